"""Render-time promises of the `adaptive` chart (contract adaptive.md, behaviours marked [R]).

Each test is named after the behaviour it proves. Release `adaptive` unless said otherwise, so
<fn> = adaptive, <cp> = adaptive-control-plane, <hm> = adaptive-harmony.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from chartproof.manifest import container, containers, decoded_secret, env_map, pod_spec
from chartproof.paths import scenario, scenarios

CHART = "adaptive"
CP = "adaptive-control-plane"
HM = "adaptive-harmony"
CP_SECRET = f"{CP}-config-secret"
HM_SECRET = f"{HM}-config-secret"
GOOD_COOKIE = "c" * 64

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
APP_COMPONENTS = ("control-plane", "harmony", "harmony-dpl", "mlflow", "redis")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

TWO_POOLS = {
    "harmony": {
        "nodeSelector": {"node.kubernetes.io/instance-type": "ml.p5.48xlarge"},
        "computePool": [
            {"name": "Pool-A", "minReplicaCount": 2, "maxReplicaCount": 5, "gpusPerReplica": 4,
             "nodeSelector": {"pool": "a"}, "podLabels": {"team": "a"},
             "resources": {"limits": {"cpu": 10}}, "extraEnvVars": {"ONLY_A": "1"}},
            {"name": "Pool-B"},
        ],
    }
}


def env_of(obj, name):
    return env_map(container(obj, name))


def app_workloads(m):
    return [o for o in m.objects if o["kind"] in WORKLOAD_KINDS
            and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") in APP_COMPONENTS]


def all_containers(obj):
    return containers(obj) + containers(obj, init=True)


def gpu_of(c, section):
    return (c.get("resources") or {}).get(section, {}).get("nvidia.com/gpu")


def pool(m, kebab, fn="adaptive"):
    return m.get("Deployment", f"{fn}-harmony-dpl-{kebab}")


# -- Metadata and names ---------------------------------------------------------------------------

@pytest.mark.parametrize("chart", ["adaptive", "monitoring"])
def test_adp_meta_01_lint_clean(helm, chart):
    result = helm.lint(chart, strict=True)
    assert result.ok, result.output
    assert "[WARNING]" not in result.output and "[ERROR]" not in result.output, result.output


@pytest.mark.parametrize("chart", ["adaptive", "monitoring"])
def test_adp_meta_02_kube_version_floor(render, chart):
    assert len(render(chart)) > 0
    assert len(render(chart, kube_version="1.26.0")) > 0
    message = render.error(chart, kube_version="1.25.0")
    assert "kube" in message.lower() and "1.25" in message, message


@pytest.mark.parametrize("release, fn", [("adaptive", "adaptive"), ("acme", "acme-adaptive"),
                                         ("my-adaptive-prod", "my-adaptive-prod")])
def test_adp_name_01_fullname(render, release, fn):
    m = render(CHART, [TWO_POOLS], set={"ingress.enabled": True, "tensorboard.enabled": True}, release=release)
    m.get("Deployment", f"{fn}-control-plane")
    m.get("Service", f"{fn}-control-plane-svc")
    m.get("Secret", f"{fn}-control-plane-config-secret")
    m.get("Secret", f"{fn}-harmony-config-secret")
    m.get("StatefulSet", f"{fn}-harmony")
    m.get("Service", f"{fn}-harmony-hdls-svc")
    m.get("Service", f"{fn}-harmony-svc")
    m.get("ConfigMap", f"{fn}-harmony-settings-confmap")
    m.get("ConfigMap", f"{fn}-harmony-alloy-confmap")
    m.get("Deployment", f"{fn}-harmony-dpl-pool-a")
    m.get("Deployment", f"{fn}-harmony-dpl-pool-b")
    m.get("Deployment", f"{fn}-mlflow")
    m.get("Service", f"{fn}-mlflow-svc")
    m.get("Deployment", f"{fn}-redis")
    m.get("Service", f"{fn}-redis-svc")
    m.get("Ingress", f"{fn}-control-plane")
    eso = render(CHART, set={"externalSecret.enabled": True}, release=release)
    eso.get("SecretStore", f"{fn}-ext-secret-store")
    eso.get("ExternalSecret", f"{fn}-control-plane-ext-secret")
    eso.get("ExternalSecret", f"{fn}-harmony-ext-secret")
    sts = m.get("StatefulSet", f"{fn}-harmony")
    assert sts["spec"]["serviceName"] == f"{fn}-harmony-hdls-svc"


@pytest.mark.parametrize("release", ["a", "acme", "adaptive-" + "x" * 44, "r" * 53, "z9-" + "q" * 50])
@pytest.mark.parametrize("autoscaling", [False, True])
def test_adp_name_02_names_valid_and_unique(render, release, autoscaling):
    pools = [{"name": "inference-pool-alpha"}, {"name": "Inference_Pool_Beta1"}, {"name": "P"}]
    values = {"harmony": {"computePool": pools}, "autoscaling": {"enabled": autoscaling},
              "tensorboard": {"enabled": True}, "ingress": {"enabled": True}, "s3proxy": {"enabled": True}}
    m = render(CHART, [values], release=release)
    keys = [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in m.objects]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    for kind, _, name in keys:
        assert len(name) <= 63, f"{kind} {name} is {len(name)} chars"
        assert DNS_SUBDOMAIN.match(name), f"{kind} {name} is not a DNS name"
        if kind in ("Service", "StatefulSet", "Deployment", "ScaledObject"):
            assert DNS_LABEL.match(name), f"{kind} {name} is not a DNS label"
        if kind == "StatefulSet":  # pods get controller-revision-hash: <name>-<10 chars>
            assert len(name) + 11 <= 63, f"StatefulSet {name} too long for its revision label"
    for o in m.objects:
        for value in (o["metadata"].get("labels") or {}).values():
            assert len(str(value)) <= 63, f"label value {value!r} on {o['kind']} {o['metadata']['name']}"
    assert len([o for o in m.objects if o["kind"] == "Deployment"
                and o["metadata"]["labels"].get("app.kubernetes.io/component") == "harmony-dpl"]) == 3


def test_adp_name_03_name_override(render):
    m = render(CHART, [TWO_POOLS], set={"nameOverride": "foo"})
    for o in app_workloads(m):
        assert o["metadata"]["labels"]["app.kubernetes.io/name"] == "foo"
        assert pod_spec(o) is not None
    m.get("Deployment", "adaptive-foo-control-plane")
    m.get("StatefulSet", "adaptive-foo-harmony")
    m.get("Deployment", "adaptive-foo-harmony-dpl-pool-a")
    assert not m.find("Deployment", "adaptive-control-plane")
    m2 = render(CHART, set={"nameOverride": "foo"}, release="foo-prod")
    m2.get("StatefulSet", "foo-prod-harmony")


# -- Secrets and validation -----------------------------------------------------------------------

@pytest.mark.parametrize("item", ["modelRegistryUrl", "sharedDirectoryUrl", "dbUrl", "cookiesSecret"])
@pytest.mark.parametrize("how", ["empty", "missing"])
def test_adp_secret_01_required_secrets(render, item, how):
    value = "" if how == "empty" else None
    message = render.error(CHART, set={f"secrets.{item}": value})
    assert item in message, message


@pytest.mark.parametrize("length, ok", [(10, False), (63, False), (64, True), (100, True)])
def test_adp_secret_02_cookie_secret_length(render, length, ok):
    values = [{"secrets": {"cookiesSecret": "k" * length}}]
    if ok:
        m = render(CHART, values)
        assert decoded_secret(m.get("Secret", CP_SECRET))["cookiesSecret"] == "k" * length
    else:
        message = render.error(CHART, values)
        assert "cookiesSecret" in message and "64" in message, message


def test_adp_secret_03_inline_secret_keys(render):
    values = {"secrets": {"modelRegistryUrl": "s3://b/reg", "sharedDirectoryUrl": "s3://b/shared",
                          "dbUrl": "postgres://u:p@h:5432/d", "cookiesSecret": GOOD_COOKIE}}
    m = render(CHART, [values])
    cp = decoded_secret(m.get("Secret", CP_SECRET))
    hm = decoded_secret(m.get("Secret", HM_SECRET))
    assert set(cp) == {"dbUrl", "cookiesSecret", "oidc_providers", "redisUrl"}
    assert set(hm) == {"HARMONY_SETTING_MODEL_REGISTRY_ROOT", "ADAPTIVE_MODEL_REGISTRY",
                       "ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL", "REDIS_URL"}
    assert cp["dbUrl"] == "postgres://u:p@h:5432/d" and cp["cookiesSecret"] == GOOD_COOKIE
    assert cp["redisUrl"] == hm["REDIS_URL"] == "redis://adaptive-redis-svc:6379"
    assert hm["HARMONY_SETTING_MODEL_REGISTRY_ROOT"] == hm["ADAPTIVE_MODEL_REGISTRY"] == "s3://b/reg"
    assert hm["ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL"] == "s3://b/shared"
    for obj in (m.get("Secret", CP_SECRET), m.get("Secret", HM_SECRET)):
        assert obj["type"] == "Opaque"


@pytest.mark.parametrize("redis_auth, url", [
    ({}, "redis://adaptive-redis-svc:6379"),
    ({"password": "s3cr3t-redis-pw"}, "redis://:s3cr3t-redis-pw@adaptive-redis-svc:6379"),
    ({"username": "ops", "password": "s3cr3t-redis-pw"}, "redis://ops:s3cr3t-redis-pw@adaptive-redis-svc:6379"),
])
def test_adp_secret_03_redis_url_format(render, redis_auth, url):
    m = render(CHART, [{"redis": {"auth": redis_auth}}])
    assert decoded_secret(m.get("Secret", CP_SECRET))["redisUrl"] == url
    assert decoded_secret(m.get("Secret", HM_SECRET))["REDIS_URL"] == url
    # the password reaches Redis through a Secret, never as a literal in the pod spec or a ConfigMap
    assert "s3cr3t-redis-pw" not in json.dumps(m.get("Deployment", "adaptive-redis"))
    assert "s3cr3t-redis-pw" not in json.dumps(m.find("ConfigMap"))


def produced_keys(m):
    """Secret name -> keys, from rendered Secrets and from ExternalSecrets (data + target template)."""
    out: dict[str, set[str]] = {}
    for s in m.find("Secret"):
        out.setdefault(s["metadata"]["name"], set()).update(decoded_secret(s))
    for es in m.find("ExternalSecret"):
        target = es["spec"]["target"]["name"]
        keys = {d["secretKey"] for d in es["spec"].get("data") or []}
        keys |= set((es["spec"]["target"].get("template") or {}).get("data") or {})
        out.setdefault(target, set()).update(keys)
    return out


@pytest.mark.parametrize("name", ["defaults-with-secrets", "external-secrets", "azure-s3proxy", "cpu-only",
                                  "autoscaling-off-two-pools", "oidc-two-providers"])
def test_adp_secret_04_references_resolve(render, name):
    m = render(CHART, [scenario(CHART, name)])
    produced = produced_keys(m)
    checked = 0
    for o in m.objects:
        if o["kind"] not in WORKLOAD_KINDS:
            continue
        for c in all_containers(o):
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in produced.get(ref["name"], set()), \
                        f"{o['kind']} {o['metadata']['name']}/{c['name']}: {ref} is never produced"
                    checked += 1
            for src in c.get("envFrom") or []:
                if "secretRef" in src:
                    assert src["secretRef"]["name"] in produced, f"{o['metadata']['name']}: {src} missing"
                    checked += 1
    assert checked >= 6


# -- OIDC, root URL, ingress ----------------------------------------------------------------------

PROVIDER_RE = re.compile(r"\{([^{}]*)\},")


def parse_oidc(text):
    text = "".join(text.split()) if False else text.strip()
    assert text.startswith("[") and text.endswith("]"), text
    entries = []
    for body in PROVIDER_RE.findall(text):
        fields = {}
        for part in re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\[[^\]]*\]|[^,]*)', body):
            key, value = part
            fields[key] = value.strip()
        entries.append(fields)
    return entries


def test_adp_oidc_01_providers_format(render):
    m = render(CHART, [scenario(CHART, "oidc-two-providers")])
    text = decoded_secret(m.get("Secret", CP_SECRET))["oidc_providers"]
    entries = parse_oidc(text)
    assert [e["key"] for e in entries] == ["okta", "keycloak"]
    okta, kc = entries
    assert okta["name"] == "Okta" and kc["name"] == "Acme Keycloak"
    assert json.loads(okta["issuer_url"]) == "https://acme.okta.com/oauth2/default"
    assert json.loads(okta["client_id"]) == "0oa1okta-client"
    assert json.loads(okta["client_secret"]) == "okta-client-secret-value"
    assert json.loads(okta["scopes"]) == ["openid", "email", "profile"]
    assert okta["pkce"] == "true" and okta["allow_sign_up"] == "true"
    assert kc["pkce"] == "false" and kc["allow_sign_up"] == "false"
    assert re.fullmatch(r"\[(\{[^{}]*\},)*\]", "".join(text.split()))
    order = [f.split("=")[0] for f in re.findall(r"\w+=", PROVIDER_RE.findall(text)[0])]
    assert order == ["key", "name", "issuer_url", "client_id", "client_secret", "scopes", "pkce", "allow_sign_up"]


def test_adp_oidc_01_empty_list(render):
    m = render(CHART, [{"secrets": {"auth": {"oidc": {"providers": []}}}}])
    assert decoded_secret(m.get("Secret", CP_SECRET))["oidc_providers"].strip() == "[]"


def test_adp_oidc_02_client_secret_optional(render):
    providers = [
        {"name": "A", "key": "a", "issuer_url": "https://a", "client_id": "ia", "client_secret": "sa",
         "scopes": ["email", "profile"], "pkce": True, "allow_sign_up": True},
        {"name": "B", "key": "b", "issuer_url": "https://b", "client_id": "ib", "client_secret": "",
         "scopes": ["email", "profile"], "pkce": True, "allow_sign_up": True},
        {"name": "C", "key": "c", "issuer_url": "https://c", "client_id": "ic",
         "scopes": ["email", "profile"], "pkce": False, "allow_sign_up": False},
    ]
    m = render(CHART, [{"secrets": {"auth": {"oidc": {"providers": providers}}}}])
    a, b, c = parse_oidc(decoded_secret(m.get("Secret", CP_SECRET))["oidc_providers"])
    assert json.loads(a["client_secret"]) == "sa"
    assert "client_secret" not in b and "client_secret" not in c
    assert b["key"] == "b" and c["key"] == "c"


@pytest.mark.parametrize("root", ["https://adaptive.acme.example.com", "http://10.0.0.5:9000"])
def test_adp_oidc_03_root_url_and_keys(render, root):
    m = render(CHART, [scenario(CHART, "oidc-two-providers")], set={"controlPlane.rootUrl": root})
    env = env_of(m.get("Deployment", CP), "control-plane")
    assert env["ADAPTIVE_SERVER__ROOT_URL"] == root
    keys = [e["key"] for e in parse_oidc(decoded_secret(m.get("Secret", CP_SECRET))["oidc_providers"])]
    assert keys == ["okta", "keycloak"]  # callback <rootUrl>/api/v1/auth/login/<key>/callback


def test_adp_ing_01_no_ingress_by_default(render):
    m = render(CHART)
    assert not m.find("Ingress")
    svc = m.get("Service", f"{CP}-svc")
    http = next(p for p in svc["spec"]["ports"] if p["name"] == "http")
    assert http["port"] == 80 and http["targetPort"] == 9000
    m2 = render(CHART, set={"controlPlane.servicePort": 8080})
    http = next(p for p in m2.get("Service", f"{CP}-svc")["spec"]["ports"] if p["name"] == "http")
    assert http["port"] == 8080 and http["targetPort"] == 9000
    sel = svc["spec"]["selector"]
    labels = m.get("Deployment", CP)["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sel.items())
    assert container(m.get("Deployment", CP), "control-plane")["ports"][0]["containerPort"] == 9000


def test_adp_ing_02_ingress_enabled(render):
    values = {"ingress": {"enabled": True, "className": "nginx", "annotations": {"a/b": "c"},
                          "tls": [{"hosts": ["adaptive.acme.example.com"], "secretName": "tls"}]},
              "controlPlane": {"rootUrl": "https://adaptive.acme.example.com:8443"}}
    m = render(CHART, [values])
    ings = m.find("Ingress")
    assert len(ings) == 1
    ing = ings[0]
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["metadata"]["annotations"] == {"a/b": "c"}
    assert ing["spec"]["tls"] == values["ingress"]["tls"]
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "adaptive.acme.example.com"
    path = rule["http"]["paths"][0]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"]["service"]["name"] == f"{CP}-svc"
    assert path["backend"]["service"]["port"] == {"name": "http"}


# -- Control plane ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), (None, "true")])
def test_adp_cp_01_run_db_migrations(render, value, expected):
    m = render(CHART, set={"controlPlane.runDbMigrations": value})
    assert env_of(m.get("Deployment", CP), "control-plane")["ADAPTIVE_DB__RUN_MIGRATIONS"] == expected


@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), (None, "true")])
def test_adp_cp_02_session_secure(render, value, expected):
    m = render(CHART, set={"auth.session.secure": value})
    assert env_of(m.get("Deployment", CP), "control-plane")["ADAPTIVE_AUTH__SESSION__SECURE"] == expected


def test_adp_cp_03_env_from_values(render):
    m = render(CHART, [scenario(CHART, "oidc-two-providers")],
               set={"controlPlane.sharedDirType": "azure", "controlPlane.image.tag": "cp:9.9",
                    "controlPlane.extraEnvVars.MY_FLAG": "on", "controlPlane.extraEnvVars.ADAPTIVE_MODE_X": 3})
    dep = m.get("Deployment", CP)
    env = env_of(dep, "control-plane")
    assert env["ADAPTIVE_AUTH__DEFAULT_ROLE"] == "read-only"
    assert env["ADAPTIVE_AUTH__DEFAULT_TEAM"] == "research"
    assert json.loads(env["ADAPTIVE_AUTH__ADMINS"]) == ["alice@acme.example.com", "bob@acme.example.com"]
    assert env["ADAPTIVE_AUTH__SESSION__EXPIRATION_SECONDS"] == "86400"
    assert env["ADAPTIVE_HARMONY__SHARED_DIRECTORY__TYPE"] == "azure"
    assert env["IMAGE_TAG"] == "cp:9.9"
    assert env["MY_FLAG"] == "on" and env["ADAPTIVE_MODE_X"] == "3"
    assert env["ADAPTIVE_SERVER__BIND"] == "0.0.0.0:9000"
    for name, key in [("ADAPTIVE_APP__SECRET", "cookiesSecret"), ("ADAPTIVE_DB__URL", "dbUrl"),
                      ("ADAPTIVE_AUTH__OIDC__PROVIDERS", "oidc_providers"), ("ADAPTIVE_REDIS__URL", "redisUrl")]:
        assert env[name] == {"secretKeyRef": {"name": CP_SECRET, "key": key}}
    c = container(dep, "control-plane")
    assert {"secretRef": {"name": HM_SECRET}} in c["envFrom"]
    defaults = env_of(render(CHART).get("Deployment", CP), "control-plane")
    assert defaults["ADAPTIVE_AUTH__DEFAULT_TEAM"] == "default"
    assert defaults["ADAPTIVE_AUTH__DEFAULT_ROLE"] == "admin"
    assert defaults["ADAPTIVE_AUTH__ADMINS"] == "[]"
    assert defaults["ADAPTIVE_AUTH__SESSION__EXPIRATION_SECONDS"] == "518400"
    assert defaults["ADAPTIVE_HARMONY__SHARED_DIRECTORY__TYPE"] == "s3"


def test_adp_cp_04_images_verbatim(render):
    values = {"containerRegistry": "reg.example.com:5000/org",
              "harmony": {"image": {"repository": "repo/h", "tag": "harmony:1.2.3"},
                          "computePool": [{"name": "a"}, {"name": "b", "image": {"tag": "harmony:pool"}}]},
              "controlPlane": {"image": {"repository": "repo/c", "tag": "control-plane:4.5"}}}
    m = render(CHART, [values])
    assert container(m.get("StatefulSet", HM), "harmony")["image"] == "reg.example.com:5000/org/repo/h:harmony:1.2.3"
    assert container(pool(m, "a"), "harmony")["image"] == "reg.example.com:5000/org/repo/h:harmony:1.2.3"
    assert container(pool(m, "b"), "harmony")["image"] == "reg.example.com:5000/org/repo/h:harmony:pool"
    assert container(m.get("Deployment", CP), "control-plane")["image"] == \
        "reg.example.com:5000/org/repo/c:control-plane:4.5"
    assert env_of(pool(m, "b"), "harmony")["IMAGE_TAG"] == "harmony:pool"


# -- Harmony and GPUs ------------------------------------------------------------------------------

def test_adp_harmony_01_statefulset(render):
    m = render(CHART, set={"harmony.replicaCount": 3, "harmony.group": "g1", "harmony.partitionKey": "pk1",
                           "harmony.extraEnvVars.EXTRA": "x", "harmony.podLabels.team": "t"})
    sts = m.get("StatefulSet", HM)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["serviceName"] == f"{HM}-hdls-svc"
    spec = pod_spec(sts)
    assert spec["serviceAccountName"] == "serviceaccount.adaptive-ml.com"
    meta = sts["spec"]["template"]["metadata"]
    assert meta["annotations"] == {"ingest-adaptive-logs": "true", "prometheus.io/scrape": "adaptive",
                                   "prometheus.io/path": "/metrics", "prometheus.io/port": "50053"}
    assert meta["labels"]["team"] == "t" and meta["labels"]["app.kubernetes.io/component"] == "harmony"
    init = container(sts, "init-permissions")
    assert "busybox" in init["image"] and init["securityContext"]["runAsUser"] == 0
    assert "1002:1000" in " ".join(init["command"])
    h = container(sts, "harmony")
    assert {p["name"]: p["containerPort"] for p in h["ports"]} == {"http": 50053, "queue": 50052, "torch": 7777}
    assert {"secretRef": {"name": HM_SECRET}} in h["envFrom"]
    env = env_map(h)
    assert env["ORDINAL"] == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    expected = {
        "GPU_COUNT": "8", "WORLD_SIZE": "24", "MASTER_ADDR": f"{HM}-0.{HM}-hdls-svc", "MASTER_PORT": "7777",
        "QUEUE_PORT": "50052", "CONTROL_PLANE_URL": f"http://{CP}-svc:9009", "GROUP": "g1",
        "GROUP_CAPABILITIES": "TRAINING,INFERENCE,EVALUATION", "PARTITION_KEY": "pk1",
        "SERVICE_URL": f"http://{HM}-svc:80", "ADAPTIVE_LOGGING_LEVEL": "info", "ADAPTIVE_MODE": "PROD",
        "JOB_LOG_DIR": "/opt/adaptive/working_dir/job_logs", "IMAGE_TAG": "harmony:latest", "EXTRA": "x",
        "MLFLOW_TRACKING_URI": "http://adaptive-mlflow-svc:5000",
    }
    for k, v in expected.items():
        assert env.get(k) == v, (k, env.get(k))
    mounts = {vm["name"]: vm["mountPath"] for vm in h["volumeMounts"]}
    assert mounts["workdir-volume"] == "/opt/adaptive/working_dir"
    assert mounts["cloud-cache-volume"] == "/opt/adaptive/cloud_cache"
    assert mounts["harmony-settings-volume"] == "/opt/adaptive/harmony_settings/docker.json"
    assert mounts["dshm"] == "/dev/shm"
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert vols["harmony-settings-volume"]["configMap"]["name"] == f"{HM}-settings-confmap"
    assert "emptyDir" in vols["workdir-volume"] and "emptyDir" in vols["cloud-cache-volume"]
    alloy = container(sts, "job-log-exporter")
    assert alloy["image"] == "grafana/alloy:latest"
    assert any(p["containerPort"] == 12345 for p in alloy["ports"])
    amounts = {vm["name"]: vm["mountPath"] for vm in alloy["volumeMounts"]}
    assert amounts == {"workdir-volume": "/workdir/", "alloy-config": "/etc/alloy"}
    assert vols["alloy-config"]["configMap"]["name"] == f"{HM}-alloy-confmap"
    settings = json.loads(m.get("ConfigMap", f"{HM}-settings-confmap")["data"]["docker.json"])
    assert "/opt/adaptive/working_dir" in settings.values() and "/opt/adaptive/cloud_cache" in settings.values()
    alloy_cfg = m.get("ConfigMap", f"{HM}-alloy-confmap")["data"]["config.alloy"]
    for needle in ("job_*.*.log", "job_id", "type", 'service_name = "harmony"', "http://loki:3100/loki/api/v1/push"):
        assert needle in alloy_cfg, needle
    hdls = m.get("Service", f"{HM}-hdls-svc")
    assert hdls["spec"]["clusterIP"] == "None"
    assert {p["name"]: p["port"] for p in hdls["spec"]["ports"]} == {"http": 50053, "queue": 50052, "torch": 7777}
    svc = m.get("Service", f"{HM}-svc")
    assert svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{HM}-0"
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [("http", 80, 50053)]


@pytest.mark.parametrize("gpus, replicas", [(8, 1), (4, 2), (1, 3)])
def test_adp_gpu_01_gpu_requests(render, gpus, replicas):
    m = render(CHART, set={"harmony.gpusPerReplica": gpus, "harmony.replicaCount": replicas,
                           "tensorboard.enabled": True})
    sts = m.get("StatefulSet", HM)
    h = container(sts, "harmony")
    assert gpu_of(h, "limits") == gpus and gpu_of(h, "requests") == gpus
    assert h["resources"]["limits"]["cpu"] == 30 and h["resources"]["requests"]["memory"] == "500Gi"
    env = env_map(h)
    assert env["GPU_COUNT"] == str(gpus) and env["WORLD_SIZE"] == str(gpus * replicas)
    for o in m.objects:
        if o["kind"] in WORKLOAD_KINDS:
            for c in all_containers(o):
                if not (o is sts and c["name"] == "harmony"):
                    assert gpu_of(c, "limits") is None and gpu_of(c, "requests") is None, (o["metadata"]["name"], c["name"])


@pytest.mark.parametrize("setting", [{"harmony.gpusPerReplica": None}, {"harmony.gpusPerReplica": 0}])
def test_adp_gpu_02_cpu_only(render, setting):
    m = render(CHART, [{"harmony": {"computePool": [{"name": "p"}]}}], set={**setting, "harmony.replicaCount": 2})
    for o in m.objects:
        if o["kind"] in WORKLOAD_KINDS:
            for c in all_containers(o):
                assert "nvidia.com/gpu" not in json.dumps(c.get("resources") or {}), (o["metadata"]["name"], c["name"])
    env = env_of(m.get("StatefulSet", HM), "harmony")
    assert env["GPU_COUNT"] == "1" and env["WORLD_SIZE"] == "2"
    penv = env_of(pool(m, "p"), "harmony")
    assert penv["GPU_COUNT"] == "1" and penv["WORLD_SIZE"] == "1"


@pytest.mark.parametrize("gpus", [3, 5, 7, 16])
def test_adp_gpu_03_divisor_not_validated(render, gpus):
    m = render(CHART, set={"harmony.gpusPerReplica": gpus})
    assert gpu_of(container(m.get("StatefulSet", HM), "harmony"), "limits") == gpus


# -- Pools and autoscaling ------------------------------------------------------------------------

def test_adp_pool_01_one_deployment_per_pool(render):
    assert not [o for o in render(CHART).find("Deployment") if "-harmony-dpl-" in o["metadata"]["name"]]
    m = render(CHART, [TWO_POOLS], set={"s3proxy.enabled": False})
    dpl = [o for o in m.find("Deployment") if "-harmony-dpl-" in o["metadata"]["name"]]
    assert sorted(o["metadata"]["name"] for o in dpl) == ["adaptive-harmony-dpl-pool-a", "adaptive-harmony-dpl-pool-b"]
    for d, raw, kebab in [(pool(m, "pool-a"), "Pool-A", "pool-a"), (pool(m, "pool-b"), "Pool-B", "pool-b")]:
        sel = d["spec"]["selector"]["matchLabels"]
        assert sel == {"app.kubernetes.io/name": "adaptive", "app.kubernetes.io/instance": "adaptive",
                       "app.kubernetes.io/component": "harmony-dpl", "inference-pool": kebab}
        assert d["metadata"]["labels"]["inference-pool"] == kebab
        assert all(d["spec"]["template"]["metadata"]["labels"][k] == v for k, v in sel.items())
        assert d["spec"]["strategy"]["type"] == "RollingUpdate"
        h = container(d, "harmony")
        env = env_map(h)
        assert env["MY_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert env["MY_POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert env["GROUP"] == raw and env["GROUP_CAPABILITIES"] == "INFERENCE"
        assert env["ORDINAL"] == "0" and env["MASTER_ADDR"] == "127.0.0.1"
        assert env["PARTITION_KEY"] == "$(MY_POD_NAME)" and env["SERVICE_URL"] == "http://$(MY_POD_IP):50053"
        assert env["CONTROL_PLANE_URL"] == f"http://{CP}-svc:9009"
        assert env["MASTER_PORT"] == "7777" and env["QUEUE_PORT"] == "50052"
        assert env["JOB_LOG_DIR"] == "/opt/adaptive/working_dir/job_logs"
        assert env["GPU_COUNT"] == env["WORLD_SIZE"]
        names = [c["name"] for c in containers(d)]
        assert names == ["harmony"], names  # no alloy/tensorboard sidecar
        assert [c["name"] for c in containers(d, init=True)] == ["init-permissions"]
        vols = {v["name"] for v in pod_spec(d)["volumes"]}
        assert {"workdir-volume", "cloud-cache-volume", "harmony-settings-volume", "dshm"} <= vols
        assert {"secretRef": {"name": HM_SECRET}} in h["envFrom"]


POOL_ORDERS = [
    [{"name": "A", "gpusPerReplica": 4, "nodeSelector": {"pool": "a"}, "tolerations": [], "extraEnvVars": {"X": "a"},
      "resources": {"limits": {"cpu": 10}}, "podAnnotations": {"note": "a"}}, {"name": "B"}],
    [{"name": "B"}, {"name": "A", "gpusPerReplica": 4, "nodeSelector": {"pool": "a"}, "tolerations": [],
                     "extraEnvVars": {"X": "a"}, "resources": {"limits": {"cpu": 10}}, "podAnnotations": {"note": "a"}},
     {"name": "C"}],
]


@pytest.mark.parametrize("pools", POOL_ORDERS, ids=["A-then-B", "B-A-C"])
@pytest.mark.parametrize("autoscaling", [False, True])
def test_adp_pool_02_pools_are_independent(render, pools, autoscaling):
    values = {"harmony": {"nodeSelector": {"node.kubernetes.io/instance-type": "ml.p5.48xlarge"},
                          "extraEnvVars": {"H": "h"}, "computePool": pools},
              "autoscaling": {"enabled": autoscaling}}
    m = render(CHART, [values])
    a = pool(m, "a")
    ha = container(a, "harmony")
    assert gpu_of(ha, "limits") == 4 and env_map(ha)["GPU_COUNT"] == "4"
    # maps deep-merge: pool A's nodeSelector adds to harmony's, resources keep harmony's memory
    assert pod_spec(a)["nodeSelector"] == {"node.kubernetes.io/instance-type": "ml.p5.48xlarge", "pool": "a"}
    assert ha["resources"]["limits"]["cpu"] == 10 and ha["resources"]["limits"]["memory"] == "500Gi"
    assert not pod_spec(a).get("tolerations")  # list replaced by []
    assert env_map(ha)["X"] == "a" and env_map(ha)["H"] == "h"
    for other in [p["name"].lower() for p in pools if p["name"] != "A"]:
        d = pool(m, other)
        h = container(d, "harmony")
        assert gpu_of(h, "limits") == 8 and gpu_of(h, "requests") == 8
        env = env_map(h)
        assert env["GPU_COUNT"] == "8" and env["WORLD_SIZE"] == "8"
        assert "X" not in env and env["H"] == "h"
        assert pod_spec(d)["nodeSelector"] == {"node.kubernetes.io/instance-type": "ml.p5.48xlarge"}
        assert pod_spec(d)["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert h["resources"]["limits"]["cpu"] == 30
        assert "note" not in d["spec"]["template"]["metadata"]["annotations"]


def test_adp_pool_03_harmony_unchanged_by_pools(render):
    base = render(CHART).get("StatefulSet", HM)
    with_pools = render(CHART, [TWO_POOLS], set={"harmony.nodeSelector": None}).get("StatefulSet", HM)
    assert base["spec"] == with_pools["spec"]


def test_adp_pool_04_pool_annotations_and_labels(render):
    values = {"harmony": {"podLabels": {"only-sts": "yes"}, "computePool": [
        {"name": "inherit", "podLabels": {"team": "x"}},
        {"name": "override", "podAnnotations": {"prometheus.io/port": "9999", "extra": "1"}}]}}
    m = render(CHART, [values])
    inherit = pool(m, "inherit")["spec"]["template"]["metadata"]
    assert inherit["annotations"] == render(CHART).get("StatefulSet", HM)["spec"]["template"]["metadata"]["annotations"]
    assert inherit["labels"]["team"] == "x"
    assert "only-sts" not in inherit["labels"]
    override = pool(m, "override")["spec"]["template"]["metadata"]
    assert override["annotations"]["prometheus.io/port"] == "9999" and override["annotations"]["extra"] == "1"
    assert override["annotations"]["ingest-adaptive-logs"] == "true"  # maps deep-merge
    assert "team" not in override["labels"]


KEDA_KINDS = {"ScaledObject", "ScaledJob", "TriggerAuthentication", "HorizontalPodAutoscaler", "APIService"}


def keda_objects(m):
    return [o for o in m.objects if o["kind"] in KEDA_KINDS
            or (o["kind"] == "CustomResourceDefinition" and o["spec"]["group"] == "keda.sh")
            or "keda" in o["metadata"]["name"]]


def test_adp_autoscale_01_off_fixed_replicas(render):
    m = render(CHART, [scenario(CHART, "autoscaling-off-two-pools")])
    assert pool(m, "pool-a")["spec"]["replicas"] == 2
    assert pool(m, "pool-b")["spec"]["replicas"] == 1
    assert not keda_objects(m), [o["metadata"]["name"] for o in keda_objects(m)]
    m2 = render(CHART, [{"harmony": {"computePool": [{"name": "x", "maxReplicaCount": 9}]}}])
    assert pool(m2, "x")["spec"]["replicas"] == 1
    assert "9" not in json.dumps(pool(m2, "x")["spec"].get("replicas"))
    assert not keda_objects(m2)


def test_adp_autoscale_02_keda_and_one_scaledobject_per_pool(render):
    m = render(CHART, [TWO_POOLS], set={"autoscaling.enabled": True})
    crds = {o["metadata"]["name"] for o in m.find("CustomResourceDefinition")}
    assert {"scaledobjects.keda.sh", "scaledjobs.keda.sh", "triggerauthentications.keda.sh",
            "clustertriggerauthentications.keda.sh"} <= crds
    m.get("APIService", "v1beta1.external.metrics.k8s.io")
    images = [c["image"] for o in m.find("Deployment") for c in containers(o)]
    assert "ghcr.io/kedacore/keda:2.16.0" in images
    assert "ghcr.io/kedacore/keda-metrics-apiserver:2.16.0" in images
    sos = m.find("ScaledObject")
    assert sorted(o["metadata"]["name"] for o in sos) == ["adaptive-harmony-dpl-pool-a", "adaptive-harmony-dpl-pool-b"]
    for so in sos:
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        ref = so["spec"]["scaleTargetRef"]
        assert ref["name"] == so["metadata"]["name"] and ref.get("kind", "Deployment") == "Deployment"
        m.get("Deployment", ref["name"])
        assert so["metadata"]["labels"]["app.kubernetes.io/component"] == "harmony-dpl"
    assert not m.find("ValidatingWebhookConfiguration") and not m.find("MutatingWebhookConfiguration")
    no_crds = render(CHART, [TWO_POOLS], set={"autoscaling.enabled": True, "keda.crds.install": False})
    assert not no_crds.find("CustomResourceDefinition")
    assert len(no_crds.find("ScaledObject")) == 2


def test_adp_autoscale_03_bounds(render):
    values = {"harmony": {"computePool": [{"name": "d"}, {"name": "e", "minReplicaCount": 3, "maxReplicaCount": 7}]},
              "autoscaling": {"enabled": True}}
    m = render(CHART, [values])
    d = m.get("ScaledObject", "adaptive-harmony-dpl-d")["spec"]
    assert (d["minReplicaCount"], d["maxReplicaCount"], d["cooldownPeriod"], d["pollingInterval"]) == (1, 2, 180, 30)
    assert d.get("initialCooldownPeriod", 0) == 0
    e = m.get("ScaledObject", "adaptive-harmony-dpl-e")["spec"]
    assert (e["minReplicaCount"], e["maxReplicaCount"]) == (3, 7)
    m2 = render(CHART, [values], set={"autoscaling.coolDownPeriodSeconds": 45})
    assert m2.get("ScaledObject", "adaptive-harmony-dpl-e")["spec"]["cooldownPeriod"] == 45


def test_adp_autoscale_04_prometheus_trigger(render):
    m = render(CHART, [scenario(CHART, "autoscaling-on")])
    so = m.get("ScaledObject", "adaptive-harmony-dpl-pool-a")
    triggers = so["spec"]["triggers"]
    assert len(triggers) == 1 and triggers[0]["type"] == "prometheus"
    md = triggers[0]["metadata"]
    assert md["serverAddress"] == "http://adaptive-prometheus"
    assert md["threshold"] == "0.05" and md["activationThreshold"] == "0"
    q = "".join(md["query"].split())
    assert 'harmony_ttft_timeout_count{pool="Pool-A"}[5m]' in q
    assert 'harmony_generation_requests_count{pool="Pool-A"}[5m]' in q
    assert "clamp_min(" in q and ("1e-05" in q or "0.00001" in q)
    assert "clamp_max(" in q or "min(" in q
    m.get("Service", "adaptive-prometheus")
    default = render(CHART, [{"harmony": {"computePool": [{"name": "p"}]}, "autoscaling": {"enabled": True}}])
    assert default.get("ScaledObject", "adaptive-harmony-dpl-p")["spec"]["triggers"][0]["metadata"]["threshold"] == "0.1"


def test_adp_autoscale_05_keda_without_pools(render):
    m = render(CHART, set={"autoscaling.enabled": True})
    assert m.find("CustomResourceDefinition") and m.has("APIService", "v1beta1.external.metrics.k8s.io")
    assert not m.find("ScaledObject")


# -- Tensorboard ----------------------------------------------------------------------------------

def test_adp_tb_01_tensorboard_off(render):
    m = render(CHART)
    sts = m.get("StatefulSet", HM)
    assert "tensorboard" not in [c["name"] for c in containers(sts)]
    assert "6006" not in m.text
    assert not [k for k in env_of(m.get("Deployment", CP), "control-plane") if k.startswith("ADAPTIVE_TENSORBOARD__")]


def test_adp_tb_02_tensorboard_on(render):
    m = render(CHART, [{"harmony": {"computePool": [{"name": "p"}]}}], set={"tensorboard.enabled": True})
    sts = m.get("StatefulSet", HM)
    tb = container(sts, "tensorboard")
    assert tb["image"] == "tensorflow/tensorflow:latest"
    assert tb["resources"] == {"limits": {"cpu": "1000m", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}
    assert any(p["containerPort"] == 6006 for p in tb["ports"])
    for name in ("harmony", "tensorboard"):
        mounts = {vm["name"]: vm["mountPath"] for vm in container(sts, name)["volumeMounts"]}
        assert mounts.get("tensorboard-volume") == "/logdir", name
    svc = m.get("Service", f"{HM}-svc")
    assert any(p["port"] == 6006 for p in svc["spec"]["ports"])
    env = env_of(m.get("Deployment", CP), "control-plane")
    assert env["ADAPTIVE_TENSORBOARD__ENABLED"] == "true"
    assert env["ADAPTIVE_TENSORBOARD__URL"] == f"http://{HM}-svc:6006"
    off = render(CHART, [{"harmony": {"computePool": [{"name": "p"}]}}])
    assert pool(m, "p") == pool(off, "p")


@pytest.mark.parametrize("mlflow, tb, expect", [(True, False, "mlflow"), (True, True, "mlflow"),
                                                (False, True, "tensorboard"), (False, False, None)])
def test_adp_tb_03_logger_priority(render, mlflow, tb, expect):
    m = render(CHART, set={"mlflow.enabled": mlflow, "tensorboard.enabled": tb})
    env = env_of(m.get("StatefulSet", HM), "harmony")
    if expect == "mlflow":
        assert env["MLFLOW_TRACKING_URI"] == "http://adaptive-mlflow-svc:5000"
        assert "TENSORBOARD_LOGGING_DIR" not in env
    elif expect == "tensorboard":
        assert env["TENSORBOARD_LOGGING_DIR"] == "/logdir" and "MLFLOW_TRACKING_URI" not in env
    else:
        assert "TENSORBOARD_LOGGING_DIR" not in env and "MLFLOW_TRACKING_URI" not in env


@pytest.mark.parametrize("size_limit", [None, "5Gi"])
def test_adp_tb_04_ephemeral_logdir(render, size_limit):
    m = render(CHART, set={"tensorboard.enabled": True, "tensorboard.emptyDir.sizeLimit": size_limit})
    sts = m.get("StatefulSet", HM)
    vol = next(v for v in pod_spec(sts)["volumes"] if v["name"] == "tensorboard-volume")
    assert "emptyDir" in vol
    assert (vol["emptyDir"] or {}).get("sizeLimit") == size_limit
    assert not sts["spec"].get("volumeClaimTemplates")


@pytest.mark.parametrize("extra, expect", [
    ({"storageClass": "gp3"}, {"class": "gp3", "modes": ["ReadWriteOnce"], "size": "10Gi"}),
    ({"storageClass": "-"}, {"class": "", "modes": ["ReadWriteOnce"], "size": "10Gi"}),
    ({"storageClass": ""}, {"class": None, "modes": ["ReadWriteOnce"], "size": "10Gi"}),
    ({"storageClass": "fast", "accessModes": ["ReadWriteMany"], "size": "50Gi", "annotations": {"a": "b"},
      "labels": {"l": "v"}}, {"class": "fast", "modes": ["ReadWriteMany"], "size": "50Gi"}),
])
def test_adp_tb_05_persistent_logdir(render, extra, expect):
    m = render(CHART, [{"tensorboard": {"enabled": True, "persistentVolume": {"enabled": True, **extra}}}])
    sts = m.get("StatefulSet", HM)
    assert "tensorboard-volume" not in [v["name"] for v in pod_spec(sts)["volumes"]]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "tensorboard-volume"
    spec = claim["spec"]
    assert spec["accessModes"] == expect["modes"]
    assert spec["resources"]["requests"]["storage"] == expect["size"]
    if expect["class"] is None:
        assert "storageClassName" not in spec
    else:
        assert spec["storageClassName"] == expect["class"]
    if "annotations" in extra:
        assert claim["metadata"]["annotations"] == extra["annotations"]
        assert claim["metadata"]["labels"]["l"] == "v"


# -- MLflow, ServiceAccount -------------------------------------------------------------------------

def test_adp_mlflow_01_toggle(render):
    on = render(CHART)
    dep = on.get("Deployment", "adaptive-mlflow")
    assert container(dep, "mlflow")["image"] == "ghcr.io/mlflow/mlflow:v3.1.1"
    env = env_of(dep, "mlflow")
    assert env["MLFLOW_WORKERS"] == "4"
    assert env["MLFLOW_BACKEND_STORE_URI"] == "sqlite:///mlflow-storage/mlflow.db"
    assert env["MLFLOW_DEFAULT_ARTIFACT_ROOT"] == "mlflow-artifacts:/"
    assert env["MLFLOW_SERVE_ARTIFACTS"] == "true"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "/artifacts"
    assert on.get("Service", "adaptive-mlflow-svc")["spec"]["ports"][0]["port"] == 5000
    cp_env = env_of(on.get("Deployment", CP), "control-plane")
    assert cp_env["ADAPTIVE_MLFLOW__ENABLED"] == "true"
    assert cp_env["ADAPTIVE_MLFLOW__URL"] == cp_env["MLFLOW_TRACKING_URI"] == "http://adaptive-mlflow-svc:5000"
    mounted = render(CHART, set={"mlflow.mountPath": "/mlflow-storage"})
    assert env_of(mounted.get("Deployment", "adaptive-mlflow"), "mlflow")["MLFLOW_ARTIFACTS_DESTINATION"] == \
        "/mlflow-storage/artifacts"
    off = render(CHART, set={"mlflow.enabled": False})
    assert not off.find(name="adaptive-mlflow") and not off.find(name="adaptive-mlflow-svc")
    assert "MLFLOW" not in json.dumps([env_map(c) for o in off.objects if o["kind"] in WORKLOAD_KINDS
                                       for c in containers(o)])


@pytest.mark.parametrize("create", [True, False])
def test_adp_sa_01_service_account(render, create):
    m = render(CHART, [TWO_POOLS], set={"serviceAccount.create": create, "serviceAccount.name": "my-sa"})
    assert m.has("ServiceAccount", "my-sa") == create
    workloads = app_workloads(m)
    assert {o["metadata"]["labels"]["app.kubernetes.io/component"] for o in workloads} == set(APP_COMPONENTS)
    for o in workloads:
        assert pod_spec(o)["serviceAccountName"] == "my-sa", o["metadata"]["name"]
    default = render(CHART)
    default.get("ServiceAccount", "serviceaccount.adaptive-ml.com")


def test_imagepullsecrets_and_volumes_reach_app_pods(render):
    values = {"imagePullSecrets": [{"name": "regcred"}],
              "volumes": [{"name": "extra", "emptyDir": {}}], "volumeMounts": [{"name": "extra", "mountPath": "/extra"}]}
    m = render(CHART, [TWO_POOLS, values])
    for o in app_workloads(m):
        assert pod_spec(o)["imagePullSecrets"] == [{"name": "regcred"}], o["metadata"]["name"]
    for name in (CP, "adaptive-harmony-dpl-pool-a"):
        d = m.get("Deployment", name)
        assert any(v["name"] == "extra" for v in pod_spec(d)["volumes"])
    sts = m.get("StatefulSet", HM)
    for cname in ("harmony", "init-permissions"):
        assert any(vm["mountPath"] == "/extra" for vm in container(sts, cname)["volumeMounts"])
    assert any(vm["mountPath"] == "/extra" for vm in container(m.get("Deployment", CP), "control-plane")["volumeMounts"])


# -- Prometheus -----------------------------------------------------------------------------------

def test_adp_prom_01_always_rendered(render):
    m = render(CHART)
    sts = m.get("StatefulSet", "adaptive-prometheus")
    assert sts["spec"]["replicas"] == 2
    (c,) = containers(sts)
    assert c["image"] == "quay.io/prometheus/prometheus:v3.1.0"
    assert "--storage.tsdb.retention.time=30d" in c["args"]
    svc = m.get("Service", "adaptive-prometheus")
    assert svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == 9090
    assert any(s["spec"].get("clusterIP") == "None" for s in m.find("Service") if "prometheus" in s["metadata"]["name"])
    m.get("ServiceAccount", "adaptive-prometheus")
    assert m.find("ClusterRole") and m.find("ClusterRoleBinding")
    import yaml
    cfg = yaml.safe_load(m.get("ConfigMap", "adaptive-prometheus")["data"]["prometheus.yml"])
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {"prometheus", "kubernetes-apiservers", "kubernetes-nodes", "kubernetes-nodes-cadvisor",
                         "kubernetes-pods"}
    pods = jobs["kubernetes-pods"]
    assert pods["scrape_interval"] == "5s" and pods["honor_labels"] is True
    keep = [r for r in pods["relabel_configs"] if r.get("action") == "keep"]
    assert keep and keep[0]["regex"] == "adaptive"
    assert "__meta_kubernetes_pod_annotation_prometheus_io_scrape" in keep[0]["source_labels"]
    targets = {r.get("target_label") for r in pods["relabel_configs"]}
    assert {"__metrics_path__", "__address__", "namespace", "pod", "node"} <= targets
    assert any(r.get("action") == "labelmap" and "pod_label" in r["regex"] for r in pods["relabel_configs"])
    assert sts["spec"]["serviceName"]
    off = render(CHART, set={"mlflow.enabled": False, "redis.enabled": False, "secrets.redisUrl": "redis://r:6379"})
    off.get("StatefulSet", "adaptive-prometheus")


def test_adp_prom_02_ephemeral_by_default(render):
    sts = render(CHART).get("StatefulSet", "adaptive-prometheus")
    vol = next(v for v in pod_spec(sts)["volumes"] if v["name"] == "storage-volume")
    assert "emptyDir" in vol
    assert not sts["spec"].get("volumeClaimTemplates")


def test_adp_prom_03_claim_template(render):
    m = render(CHART, set={"prometheus.server.persistentVolume.enabled": True})
    sts = m.get("StatefulSet", "adaptive-prometheus")
    assert "storage-volume" not in [v["name"] for v in pod_spec(sts)["volumes"]]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "storage-volume"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    m2 = render(CHART, set={"prometheus.server.persistentVolume.enabled": True,
                            "prometheus.server.persistentVolume.size": "50Gi"})
    (claim2,) = m2.get("StatefulSet", "adaptive-prometheus")["spec"]["volumeClaimTemplates"]
    assert claim2["spec"]["resources"]["requests"]["storage"] == "50Gi"


@pytest.mark.parametrize("readme, community, expect", [
    ("gp3", None, "gp3"), (None, "io2", "io2"), ("gp3", "io2", "io2"), (None, None, None),
    ("-", None, ""), (None, "-", ""), ("", "", None)])
def test_adp_prom_04_storage_class(render, readme, community, expect):
    server = {"persistentVolume": {"enabled": True}}
    if readme is not None:
        server["storageClass"] = readme
    if community is not None:
        server["persistentVolume"]["storageClass"] = community
    m = render(CHART, [{"prometheus": {"server": server}}])
    (claim,) = m.get("StatefulSet", "adaptive-prometheus")["spec"]["volumeClaimTemplates"]
    if expect is None:
        assert "storageClassName" not in claim["spec"]
    else:
        assert claim["spec"]["storageClassName"] == expect


# -- s3proxy --------------------------------------------------------------------------------------

def test_adp_s3_01_off_by_default(render):
    m = render(CHART, [TWO_POOLS])
    assert not [o for o in m.objects if "s3proxy" in o["metadata"]["name"]]
    for o in app_workloads(m):
        for c in containers(o):
            env = env_map(c)
            for k in ("AWS_ENDPOINT_URL", "S3_FORCE_PATH_STYLE", "ADAPTIVE_HARMONY__SHARED_DIRECTORY__ENDPOINT",
                      "ADAPTIVE_HARMONY__SHARED_DIRECTORY__FORCE_PATH_STYLE"):
                assert k not in env, (o["metadata"]["name"], k)


def test_adp_s3_02_proxy_objects(render):
    m = render(CHART, [scenario(CHART, "azure-s3proxy")])
    dep = m.get("Deployment", "adaptive-s3proxy")
    svc = m.get("Service", "adaptive-s3proxy")
    secret = m.get("Secret", "adaptive-s3proxy")
    m.get("ServiceAccount", "adaptive-s3proxy")
    hpa = m.get("HorizontalPodAutoscaler", "adaptive-s3proxy")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert svc["spec"]["ports"][0]["port"] == 80
    c = containers(dep)[0]
    assert c["image"] == "andrewgaul/s3proxy:2.6.0"
    env = env_map(c)
    assert env["S3PROXY_AUTHORIZATION"] == "none"
    assert env["S3PROXY_ENDPOINT"] == "http://0.0.0.0:80"
    assert env["S3PROXY_IGNORE_UNKNOWN_HEADERS"] == "true"
    assert env["JCLOUDS_PROVIDER"] == "azureblob" and env["JCLOUDS_AZUREBLOB_AUTH"] == "azureKey"
    assert env["JCLOUDS_IDENTITY"] == "acmeadaptivestorage"
    assert env["JCLOUDS_ENDPOINT"] == "https://acmeadaptivestorage.blob.core.windows.net"
    assert env["JCLOUDS_CREDENTIAL"] == {"secretKeyRef": {"name": "adaptive-s3proxy", "key": "targetCredential"}}
    assert decoded_secret(secret)["targetCredential"] == "ZmFrZS1henVyZS1hY2Nlc3Mta2V5LWZvci10ZXN0cw=="
    assert c["resources"] == {"limits": {"cpu": "1000m", "memory": "250Mi"}, "requests": {"cpu": "200m", "memory": "250Mi"}}
    for probe in ("livenessProbe", "readinessProbe"):
        p = c[probe]
        assert "tcpSocket" in p and (p["initialDelaySeconds"], p["periodSeconds"], p["timeoutSeconds"]) == (15, 30, 3)


def test_adp_s3_03_storage_clients_use_proxy(render):
    m = render(CHART, [scenario(CHART, "azure-s3proxy")])
    env = env_of(m.get("Deployment", CP), "control-plane")
    assert env["ADAPTIVE_HARMONY__SHARED_DIRECTORY__ENDPOINT"] == "http://adaptive-s3proxy"
    assert env["ADAPTIVE_HARMONY__SHARED_DIRECTORY__FORCE_PATH_STYLE"] == "true"
    for obj in (m.get("StatefulSet", HM), pool(m, "pool-a")):
        env = env_of(obj, "harmony")
        assert env["AWS_ENDPOINT_URL"] == "http://adaptive-s3proxy", obj["metadata"]["name"]
        assert env["S3_FORCE_PATH_STYLE"] == "true"


# -- External secrets ------------------------------------------------------------------------------

def test_adp_eso_01_eso_mode_objects(render):
    m = render(CHART, [{"externalSecret": {"enabled": True}, "secrets": None}])
    m.get("SecretStore", "adaptive-ext-secret-store")
    m.get("ExternalSecret", f"{CP}-ext-secret")
    m.get("ExternalSecret", f"{HM}-ext-secret")
    assert not [s for s in m.find("Secret") if s.get("type", "Opaque") == "Opaque"
                and s["metadata"]["name"] in (CP_SECRET, HM_SECRET)]
    # secrets.* neither required nor validated
    short = render(CHART, set={"externalSecret.enabled": True, "secrets.cookiesSecret": "short",
                               "secrets.dbUrl": ""})
    assert short.has("ExternalSecret", f"{CP}-ext-secret")
    for es in m.find("ExternalSecret"):
        assert es["apiVersion"] == "external-secrets.io/v1"
        assert es["spec"]["refreshInterval"] == "1h"
        assert es["spec"]["target"]["creationPolicy"] == "Owner"
    assert m.get("ExternalSecret", f"{CP}-ext-secret")["spec"]["target"]["name"] == CP_SECRET
    assert m.get("ExternalSecret", f"{HM}-ext-secret")["spec"]["target"]["name"] == HM_SECRET


@pytest.mark.parametrize("values", [[], [{"s3proxy": {"enabled": True}, "redis": {"auth": {"password": "p"}}}]])
def test_adp_eso_02_eso_covers_inline_keys(render, values):
    inline = produced_keys(render(CHART, values))
    eso = produced_keys(render(CHART, values + [{"externalSecret": {"enabled": True}}]))
    for name in (CP_SECRET, HM_SECRET):
        assert inline[name] <= eso[name], (name, inline[name] - eso[name])


def test_adp_eso_03_store_and_refs(render):
    m = render(CHART, [scenario(CHART, "external-secrets")])
    import yaml
    values = yaml.safe_load(scenario(CHART, "external-secrets").read_text())
    store = m.get("SecretStore", "adaptive-ext-secret-store")
    assert store["spec"] == values["externalSecret"]["spec"]
    data = values["externalSecret"]["data"]
    for es in m.find("ExternalSecret"):
        assert es["spec"]["secretStoreRef"] == {"name": "adaptive-ext-secret-store", "kind": "SecretStore"}
    refs = {d["secretKey"]: d["remoteRef"] for d in m.get("ExternalSecret", f"{CP}-ext-secret")["spec"]["data"]}
    assert refs["dbUrl"] == data["dbUrl"]["remoteRef"]
    assert refs["cookiesSecret"] == {"key": "prod/adaptive/cookies"}  # plain text: no property
    assert refs["oidc_providers"] == {"key": "prod/adaptive/oidc"}
    hrefs = {d["secretKey"]: d["remoteRef"] for d in m.get("ExternalSecret", f"{HM}-ext-secret")["spec"]["data"]}
    assert hrefs["ADAPTIVE_MODEL_REGISTRY"] == hrefs["HARMONY_SETTING_MODEL_REGISTRY_ROOT"] == \
        data["modelRegistryUrl"]["remoteRef"]
    assert hrefs["ADAPTIVE_HARMONY__SHARED_DIRECTORY__URL"] == data["sharedDirectoryUrl"]["remoteRef"]
    osc = data["objectStorageConfig"]
    assert hrefs["AWS_ACCESS_KEY_ID"] == osc["awsAccessKeyId"]["remoteRef"]
    assert hrefs["AWS_SECRET_ACCESS_KEY"] == osc["awsSecretAccessKey"]["remoteRef"]
    assert hrefs["AWS_ENDPOINT_URL_S3"] == osc["awsEndpointUrlS3"]["remoteRef"]
    plain = render(CHART, set={"externalSecret.enabled": True})
    hkeys = {d["secretKey"] for d in plain.get("ExternalSecret", f"{HM}-ext-secret")["spec"]["data"]}
    assert not hkeys & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"}


def _flatten(d, prefix=()):
    for k, v in d.items():
        path = (*prefix, k)
        if isinstance(v, dict) and v:
            yield from _flatten(v, path)
        else:
            yield path, v


def test_adp_eso_04_example_values_file(render, charts):
    import yaml
    directory = charts.local_dir(CHART)
    example = directory / "values_external_secret.yaml"
    assert example.is_file()
    defaults = yaml.safe_load((directory / "values.yaml").read_text())
    overlay = yaml.safe_load(example.read_text())
    for path, _ in _flatten(overlay):
        node = defaults
        for part in path:
            assert isinstance(node, dict) and part in node, f"{'.'.join(path)} is not a key of values.yaml"
            node = node[part]
    m = render(CHART, [example])
    assert not [s for s in m.find("Secret") if s["metadata"]["name"] in (CP_SECRET, HM_SECRET)]
    cp_refs = {d["secretKey"] for d in m.get("ExternalSecret", f"{CP}-ext-secret")["spec"]["data"]}
    hm_refs = [d["remoteRef"]["key"] for d in m.get("ExternalSecret", f"{HM}-ext-secret")["spec"]["data"]]
    assert {"dbUrl", "cookiesSecret", "oidc_providers"} <= cp_refs
    assert "path/to/modelRegistryUrl" in hm_refs and "path/to/sharedDirectoryUrl" in hm_refs
    assert m.get("SecretStore", "adaptive-ext-secret-store")["spec"] == overlay["externalSecret"]["spec"]
    sts = m.get("StatefulSet", HM)
    h = container(sts, "harmony")
    assert h["image"].startswith("111111111111.dkr.ecr.us-west-2.amazonaws.com/")
    assert h["resources"]["limits"]["cpu"] == 7 and h["resources"]["requests"]["memory"] == "60Gi"
    assert gpu_of(h, "limits") == 8 and sts["spec"]["replicas"] == 1


@pytest.mark.parametrize("name", ["defaults-with-secrets", "autoscaling-off-two-pools", "autoscaling-on",
                                  "tensorboard-persisted", "prometheus-persisted", "external-secrets",
                                  "azure-s3proxy", "oidc-two-providers", "cpu-only"])
def test_adp_meta_01_lint_clean_scenarios(helm, name):
    result = helm.lint(CHART, [scenario(CHART, name)], strict=True)
    assert result.ok, result.output
    assert "[WARNING]" not in result.output and "[ERROR]" not in result.output, result.output


@pytest.mark.parametrize("bad", [{"harmony.gpusPerReplica": "eight"}, {"autoscaling.enabled": "yes"},
                                 {"harmonny.replicaCount": 2}, {"tensorboard.persistentVolume.enabled": "sure"},
                                 {"controlPlane.rootUrl": "https://adaptive.acme.example.com/"}])
def test_schema_rejects_typos_and_types(render, bad):
    render.error(CHART, set=bad)


@pytest.mark.parametrize("extra", [{"global.imageRegistry": "x"}, {"keda.crds.install": False},
                                   {"s3proxy.enabled": False}, {"prometheus.server.retention": "7d"}])
def test_schema_accepts_global_and_subchart_keys(render, extra):
    assert render(CHART, set=extra).has("StatefulSet", HM)


def _secret_strings(values: dict) -> set[str]:
    """The secret values a customer puts in a values file: secrets.*, the Azure key, Redis credentials."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, str) and len(node) >= 6:
            found.add(node)

    secrets = dict(values.get("secrets") or {})
    oidc = ((secrets.pop("auth", None) or {}).get("oidc") or {}).get("providers") or []
    walk(secrets)
    walk([p.get("client_secret") for p in oidc if isinstance(p, dict)])
    walk(((values.get("s3proxy") or {}).get("azure") or {}).get("storageAccount", {}).get("accessKey"))
    walk(((values.get("redis") or {}).get("auth") or {}).get("password"))
    return found


@pytest.mark.parametrize("path", scenarios(CHART), ids=lambda p: p.stem)
def test_secret_values_appear_only_in_secrets(render, path):
    """No secret from the values file lands in a ConfigMap, a literal env value, an annotation or any
    other object than a Secret (pods read them through secretKeyRef/envFrom)."""
    values = yaml.safe_load(path.read_text()) or {}
    secrets = _secret_strings(values)
    manifest = render(CHART, [path])
    for obj in manifest:
        if obj["kind"] == "Secret":
            continue
        text = yaml.safe_dump(obj)
        leaked = sorted(s for s in secrets if s in text)
        assert not leaked, f"{obj['kind']} {obj['metadata']['name']} carries secret values from {path.name}"
