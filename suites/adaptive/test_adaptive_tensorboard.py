"""Adaptive contract, E "Tensorboard" (ADP-TB-01..05; D.3/D.4 tensorboard wiring): the sidecar, its
volume (temporary or a claim template) and Service port only when enabled; MLflow first as harmony's logger."""

from __future__ import annotations

import adaptive_facts as F
import pytest

from chartproof.manifest import all_containers, container, containers, dig, fragment, ref, same_quantity

TB_ON = {"tensorboard": {"enabled": True}}


def persistent(**pv) -> dict:
    return {"tensorboard": {"enabled": True, "persistentVolume": {"enabled": True, **pv}}}


@pytest.mark.contract("ADP-TB-01")
def test_tensorboard_off_leaves_no_trace(render):
    m = render(F.CHART, [F.pools("p")])
    for obj in (F.harmony(m), F.pool(m, "p")):
        names = [c.get("name") for c in containers(obj)]
        assert "tensorboard" not in names, f"{ref(obj)}: tensorboard off, found container tensorboard"
        ports = [p.get("containerPort") for c in all_containers(obj) for p in c.get("ports") or []]
        assert 6006 not in ports, f"{ref(obj)}: tensorboard off, found container port 6006"
    for svc in m.select("Service"):
        assert 6006 not in [p.get("port") for p in dig(svc, "spec.ports", []) or []], f"{ref(svc)} exposes 6006"
    env = F.env_of(m, F.control_plane(m), "control-plane")
    assert not [k for k in env if k.startswith("ADAPTIVE_TENSORBOARD__")], \
        f"tensorboard off: expected no ADAPTIVE_TENSORBOARD__* env, found {[k for k in env if 'TENSORBOARD' in k]}"


@pytest.mark.contract("ADP-TB-02")
def test_tensorboard_on_adds_the_sidecar_volume_port_and_control_plane_env(render):
    m = render(F.CHART, [TB_ON])
    sts = F.harmony(m)
    tb = container(sts, "tensorboard")
    assert "tensorflow/tensorflow:latest" in str(tb.get("image")), f"tensorboard image: found {tb.get('image')!r}"
    for section, name, value in (("limits", "cpu", "1000m"), ("limits", "memory", "1Gi"), ("requests", "cpu", "500m"),
                                 ("requests", "memory", "1Gi")):
        assert F.resource_is(tb, section, name, value), f"tensorboard {section}.{name}: expected {value}, found {tb.get('resources')}"
    assert 6006 in F.container_ports(tb).values(), f"tensorboard: expected port 6006, found {tb.get('ports')}"
    for name in ("harmony", "tensorboard"):
        assert "/logdir" in F.mount_of(container(sts, name), "tensorboard-volume"), \
            f"{name}: expected tensorboard-volume at /logdir, mounts {container(sts, name).get('volumeMounts')}"
    svc = m.get("Service", F.HM_SVC)
    assert [p for p in dig(svc, "spec.ports", []) or [] if p.get("port") == 6006 and F.target_of(p, tb) == 6006], \
        f"{ref(svc)}: expected port 6006 -> 6006, found {dig(svc, 'spec.ports')}"
    F.expect_env(F.env_of(m, F.control_plane(m), "control-plane"),
                 {"ADAPTIVE_TENSORBOARD__ENABLED": "true", "ADAPTIVE_TENSORBOARD__URL": f"http://{F.HM_SVC}:6006"},
                 "control-plane")


@pytest.mark.contract("ADP-TB-02")
def test_tensorboard_leaves_pools_unchanged(render):
    on = F.pool(render(F.CHART, [F.pools("p"), TB_ON]), "p")
    off = F.pool(render(F.CHART, [F.pools("p")]), "p")
    assert on == off, f"tensorboard on changed pool p:\noff:\n{fragment(off)}\non:\n{fragment(on)}"


@pytest.mark.contract("ADP-TB-03")
@pytest.mark.parametrize("mlflow, tensorboard, expect", [(True, False, "mlflow"), (True, True, "mlflow"),
                                                         (False, True, "tensorboard")])
def test_mlflow_first_then_tensorboard_as_harmonys_logger(render, mlflow, tensorboard, expect):
    m = render(F.CHART, set={"mlflow.enabled": mlflow, "tensorboard.enabled": tensorboard})
    env = F.env_of(m, F.harmony(m), "harmony")
    found = {k: env.get(k) for k in ("MLFLOW_TRACKING_URI", "TENSORBOARD_LOGGING_DIR")}
    expected = {"MLFLOW_TRACKING_URI": F.MLFLOW_URL, "TENSORBOARD_LOGGING_DIR": None} if expect == "mlflow" \
        else {"MLFLOW_TRACKING_URI": None, "TENSORBOARD_LOGGING_DIR": "/logdir"}
    assert found == expected, f"mlflow {mlflow}, tensorboard {tensorboard}: expected harmony env {expected}, found {found}"


@pytest.mark.contract("ADP-TB-04")
@pytest.mark.parametrize("size_limit", [None, "5Gi"])
def test_without_persistence_the_logdir_is_an_empty_dir(render, size_limit):
    values = {"tensorboard": {"enabled": True, "emptyDir": {"sizeLimit": size_limit}}}
    sts = F.harmony(render(F.CHART, [values]))
    vol = F.volume(sts, "tensorboard-volume")
    assert vol is not None and "emptyDir" in vol, f"{ref(sts)}: expected volume tensorboard-volume as emptyDir, found {vol}"
    found = (vol.get("emptyDir") or {}).get("sizeLimit")
    assert same_quantity(found, size_limit), f"tensorboard-volume sizeLimit: expected {size_limit!r}, found {found!r}"
    assert F.claim_template(sts, "tensorboard-volume") is None, f"{ref(sts)}: persistence off, found a claim template"


def claim_of(render, values) -> dict:
    sts = F.harmony(render(F.CHART, [values]))
    claim = F.claim_template(sts, "tensorboard-volume")
    assert claim is not None, f"{ref(sts)}: expected claim template tensorboard-volume, found " \
                              f"{[dig(c, 'metadata.name') for c in dig(sts, 'spec.volumeClaimTemplates', []) or []]}"
    assert F.volume(sts, "tensorboard-volume") is None, f"{ref(sts)}: tensorboard-volume is both a volume and a claim template"
    return claim


@pytest.mark.contract("ADP-TB-05")
@pytest.mark.parametrize("given, expected", [("gp3", "gp3"), ("-", ""), ("", None)], ids=["class", "dash", "empty"])
def test_claim_storage_class(render, given, expected):
    spec = claim_of(render, persistent(storageClass=given)).get("spec") or {}
    assert spec.get("storageClassName") == expected, \
        f"storageClass {given!r}: expected storageClassName {expected!r} (None = omitted), found {spec.get('storageClassName')!r}"


@pytest.mark.contract("ADP-TB-05", extension=True)
def test_claim_defaults_are_read_write_once_10gi(render):
    spec = claim_of(render, persistent(storageClass="gp3")).get("spec") or {}
    assert spec.get("accessModes") == ["ReadWriteOnce"], f"accessModes: expected [ReadWriteOnce], found {spec.get('accessModes')}"
    size = dig(spec, "resources.requests.storage")
    assert same_quantity(size, "10Gi"), f"claim size: expected 10Gi, found {size!r}"


@pytest.mark.contract("ADP-TB-05")
def test_explicit_claim_settings_are_used_as_given(render):
    claim = claim_of(render, persistent(storageClass="fast", accessModes=["ReadWriteMany"], size="50Gi",
                                        annotations={"a": "b"}, labels={"l": "v"}))
    spec = claim.get("spec") or {}
    assert set(spec.get("accessModes") or []) == {"ReadWriteMany"}, f"accessModes: expected [ReadWriteMany], found {spec.get('accessModes')}"
    assert same_quantity(dig(spec, "resources.requests.storage"), "50Gi"), f"size: expected 50Gi\n{fragment(claim)}"
    assert (dig(claim, "metadata.annotations", {}) or {}).get("a") == "b", f"annotation a: b expected\n{fragment(claim)}"
    assert (dig(claim, "metadata.labels", {}) or {}).get("l") == "v", f"label l: v expected\n{fragment(claim)}"
