"""HyperPod contract E, "Packaging" (and B, chart metadata): Chart.yaml, `helm dependency update`, `helm lint`.

There is no internet here: a build whose Chart.yaml fetches charts from remote repositories (the public chart
fetches NVIDIA and EFA from https repositories) is assessed on what it ships in charts/, and the steps
that need the network are skipped with that reason, never failed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import hyperpod_facts as F
import pytest

from chartproof import yamlio
from chartproof.manifest import key

_NETWORK = re.compile(r"no such host|dial tcp|i/o timeout|connection refused|network is unreachable|"
                      r"Temporary failure in name resolution|could not download|looks like .* is not a valid chart repository|"
                      r"failed to fetch", re.I)


def _semver(value) -> str:
    return str(value).strip().lstrip("v")


@pytest.mark.contract("HYP-DEP-01")
def test_hyp_dep_01_chart_yaml_lists_the_fifteen_dependencies(chart_dir):
    meta = F.chart_meta(chart_dir)
    found = (meta.get("apiVersion"), meta.get("type", "application"), meta.get("name"), _semver(meta.get("version")),
             str(meta.get("appVersion")))
    assert found == ("v2", "application", "hyperpod-helm-chart", "0.1.0", "1.16.0"), \
        f"Chart.yaml metadata (apiVersion, type, name, version, appVersion): expected v2/application/" \
        f"hyperpod-helm-chart/0.1.0/1.16.0, found {found}"
    listed = [str(d.get("name")) for d in meta.get("dependencies") or [] if isinstance(d, dict)]
    assert sorted(listed) == sorted(F.DEPENDENCIES), \
        f"dependencies: expected {sorted(F.DEPENDENCIES)}, found {sorted(listed)}"
    deps = F.dependency_entries(chart_dir)
    problems = []
    for name, (version, repo_dir, condition) in F.DEPENDENCIES.items():
        dep = deps[name]
        if _semver(dep.get("version")) != version:
            problems.append(f"{name}: version {dep.get('version')!r}, expected {version}")
        conditions = [c.strip() for c in str(dep.get("condition", "")).split(",")]
        if condition not in conditions:
            problems.append(f"{name}: condition {dep.get('condition')!r} lacks {condition}")
        for field in ("alias", "tags", "import-values"):
            if dep.get(field):
                problems.append(f"{name}: has {field} {dep.get(field)!r}")
        repo = str(dep.get("repository", ""))
        allowed = {F.REMOTE_REPOSITORIES[name].rstrip("/"), f"file://charts/{name}"} if repo_dir is None \
            else {f"file://charts/{repo_dir}"}
        if repo.rstrip("/") not in allowed:
            problems.append(f"{name}: repository {repo!r}, expected one of {sorted(allowed)}")
            continue
        if repo.startswith("file://"):
            sub_yaml = chart_dir / repo[len("file://"):] / "Chart.yaml"
            if not sub_yaml.is_file():
                problems.append(f"{name}: {repo} has no Chart.yaml")
                continue
            sub = yamlio.load(sub_yaml.read_text()) or {}
            if sub.get("name") != name or _semver(sub.get("version")) != version:
                problems.append(f"{name}: {repo} declares {sub.get('name')} {sub.get('version')}, expected {name} {version}")
    assert not problems, "Chart.yaml dependencies differ from contract B:\n" + "\n".join(problems)


@pytest.fixture
def chart_copy(chart_dir, tmp_path) -> Path:
    """A private copy of the chart as shipped: `helm dependency update` writes Chart.lock and archives into
    the chart directory, which must not touch the chart under test."""
    dest = tmp_path / "hyperpod"
    shutil.copytree(chart_dir, dest)
    return dest


def _lock(path: Path) -> list[tuple[str, str, str]]:
    lock_file = path / "Chart.lock"
    assert lock_file.is_file(), "helm dependency update wrote no Chart.lock"
    lock = yamlio.load(lock_file.read_text()) or {}
    return sorted((str(d.get("name")), _semver(d.get("version")), str(d.get("repository")))
                  for d in lock.get("dependencies") or [] if isinstance(d, dict))


def _archives(path: Path) -> list[str]:
    return sorted(p.name for p in (path / "charts").glob("*.tgz"))


def _skip_if_remote(chart_dir: Path, what: str) -> None:
    remote = F.remote_dependencies(chart_dir)
    if remote:
        pytest.skip(f"{what} needs the network (no internet here): Chart.yaml fetches "
                    + ", ".join(f"{n} from {r}" for n, r in sorted(remote.items())))


def _dependency_update(helm, path: Path):
    result = helm.run("dependency", "update", str(path))
    if not result.ok and _NETWORK.search(result.output):
        pytest.skip(f"helm dependency update needs the network (no internet here): {result.error}")
    assert result.ok, f"helm dependency update failed: {result.output}"
    return result


def _dependency_status(helm, path: Path) -> dict[str, str]:
    """`helm dependency list`: name -> status (ok, unpacked, missing, wrong version...), offline."""
    result = helm.run("dependency", "list", str(path))
    assert result.ok, f"helm dependency list failed: {result.output}"
    status = {}
    for line in result.stdout.splitlines()[1:]:
        cols = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cols) >= 4:
            status[cols[0]] = cols[3]
    return status


@pytest.mark.contract("HYP-DEP-02")
def test_hyp_dep_02_shipped_dependencies_are_present(helm, chart_dir):
    """What can be assessed offline for any build: every local (file://) dependency is in place for
    `helm dependency update`, and remote ones are already in charts/ (else they need the network)."""
    status = _dependency_status(helm, chart_dir)
    assert sorted(status) == sorted(F.DEPENDENCIES), f"helm dependency list: expected {sorted(F.DEPENDENCIES)}, " \
                                                      f"found {sorted(status)}"
    remote = F.remote_dependencies(chart_dir)
    bad = {n: s for n, s in status.items() if n not in remote and s not in ("ok", "unpacked")}
    assert not bad, f"local dependencies not in place (helm dependency list status): {bad}"
    unfetched = {n: status.get(n) for n in remote if status.get(n) not in ("ok", "unpacked")}
    if unfetched:
        pytest.skip(f"remote dependencies not shipped in charts/ need the network to fetch (no internet here): {unfetched}")


@pytest.mark.contract("HYP-DEP-02")
def test_hyp_dep_02_dependency_update_works_offline_and_is_repeatable(helm, chart_copy, hp):
    _skip_if_remote(chart_copy, "helm dependency update")
    before = hp(chart=str(chart_copy))
    _dependency_update(helm, chart_copy)
    lock = _lock(chart_copy)
    assert sorted(n for n, _, _ in lock) == sorted(F.DEPENDENCIES), \
        f"Chart.lock entries: expected the 15 dependencies {sorted(F.DEPENDENCIES)}, found {lock}"
    archives = _archives(chart_copy)
    no_archive = [n for n, v, _ in lock if not any(a in (f"{n}-{v}.tgz", f"{n}-v{v}.tgz") for a in archives)]
    assert not no_archive, f"no archive in charts/ for {no_archive}; archives: {archives}"
    _dependency_update(helm, chart_copy)
    assert _lock(chart_copy) == lock, "a second helm dependency update changed Chart.lock's entries"
    assert _archives(chart_copy) == archives, "a second helm dependency update changed the archives in charts/"
    # With archives next to the unpacked subcharts the chart must still render the same, every time
    # (helm would otherwise load each subchart twice and use either copy). A distinct --set per render keeps
    # the engine's render cache out of the way.
    want = sorted(key(o) for o in before)
    for i in range(3):
        after = hp(set={"chartproofRenderProbe": i}, chart=str(chart_copy))
        assert sorted(key(o) for o in after) == want and after.objects == before.objects, \
            f"render {i + 1} after dependency update differs from the render before it"


# helm lint checks metadata.name per document; a `v1 List` (which the API server and helm install accept, and
# which the contract leaves open) has none, so that one warning is about helm's reading, not the chart.
_LIST_NAME_WARNING = 'object name does not conform to Kubernetes naming requirements: ""'


def _lint_findings(result, levels=("[WARNING]", "[ERROR]")) -> list[str]:
    return [ln.strip() for ln in result.output.splitlines()
            if any(level in ln for level in levels) and _LIST_NAME_WARNING not in ln]


@pytest.mark.contract("HYP-LINT-01")
def test_hyp_lint_01_lint_is_clean_after_dependency_update(helm, chart_copy):
    remote = F.remote_dependencies(chart_copy)
    if remote:  # assess on what is present: a build that ships its remote dependencies needs no update
        status = _dependency_status(helm, chart_copy)
        absent = sorted(n for n in remote if status.get(n) not in ("ok", "unpacked"))
        if absent:
            pytest.skip(f"{', '.join(absent)} must be fetched from a remote repository first (no internet here)")
    else:
        _dependency_update(helm, chart_copy)
    result = helm.lint(str(chart_copy), args=("--namespace", F.NAMESPACE))
    findings = _lint_findings(result)
    assert result.ok and not findings, f"helm lint of the umbrella: expected no error or warning, found {findings or result.output}"


@pytest.mark.contract("HYP-LINT-01")
@pytest.mark.parametrize("name", sorted(F.DEPENDENCIES))
def test_hyp_lint_01_each_local_subchart_lints_clean(helm, chart_dir, name):
    if not str(F.dependency_entries(chart_dir).get(name, {}).get("repository", "")).startswith("file://"):
        pytest.skip(f"{name} is not a local (file://) subchart in this build")
    sub = F.subchart_dir(chart_dir, name)
    values = [F.inference_values(prefix="")] if name == "hyperpod-inference-operator" else []
    sets = {"computeQuotaTarget.targetId": "x"} if name == "team-role-and-bindings" else None
    own_remote = F.remote_dependencies(sub)
    if own_remote and any(not any((sub / "charts").glob(f"{n}*")) for n in own_remote):
        pytest.skip(f"{name}'s own dependencies need the network: {sorted(own_remote)}")
    result = helm.lint(str(sub), values, sets, args=("--namespace", F.NAMESPACE))
    findings = _lint_findings(result)
    assert result.ok and not findings, f"helm lint {name}: expected no error or warning, found {findings or result.output}"


@pytest.mark.contract("HYP-LINT-02")
def test_hyp_lint_02_lint_passes_before_any_dependency_update(helm, chart_dir):
    """The chart as shipped (no `helm dependency update` run by us): lint exits 0; warnings allowed."""
    result = helm.lint(str(chart_dir), args=("--namespace", F.NAMESPACE))
    errors = _lint_findings(result, ("[ERROR]",))
    assert result.ok and not errors, f"helm lint before dependency update: expected exit 0 without errors, " \
                                     f"found {errors or result.output}"
