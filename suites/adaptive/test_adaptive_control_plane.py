"""Adaptive contract, E "Control-plane flags" (ADP-CP-*; D.3 control-plane env, C.1 images): the flags and
values of `controlPlane.*` and `auth.*` reach the control plane's env as D.3 says, and every app image is
`<containerRegistry>/<repository>:<tag>`."""

from __future__ import annotations

import json

import adaptive_facts as F
import pytest

from chartproof.manifest import container, ref

CP_ENV_SECRETS = {"ADAPTIVE_APP__SECRET": "cookiesSecret", "ADAPTIVE_DB__URL": "dbUrl",
                  "ADAPTIVE_AUTH__OIDC__PROVIDERS": "oidc_providers", "ADAPTIVE_REDIS__URL": "redisUrl"}


def cp_env(m) -> dict:
    return F.env_of(m, F.control_plane(m), "control-plane")


@pytest.mark.contract("ADP-CP-01")
@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), (None, "true")],
                         ids=["true", "false", "absent"])
def test_run_db_migrations_flag(render, value, expected):
    found = cp_env(render(F.CHART, set={"controlPlane.runDbMigrations": value})).get("ADAPTIVE_DB__RUN_MIGRATIONS")
    assert found == expected, f"runDbMigrations {value}: expected ADAPTIVE_DB__RUN_MIGRATIONS={expected!r}, found {found!r}"


@pytest.mark.contract("ADP-CP-02")
@pytest.mark.parametrize("value, expected", [(True, "true"), (False, "false"), (None, "true")],
                         ids=["true", "false", "absent"])
def test_session_secure_flag(render, value, expected):
    found = cp_env(render(F.CHART, set={"auth.session.secure": value})).get("ADAPTIVE_AUTH__SESSION__SECURE")
    assert found == expected, f"auth.session.secure {value}: expected ADAPTIVE_AUTH__SESSION__SECURE={expected!r}, " \
                              f"found {found!r}"


@pytest.mark.contract("ADP-CP-03")
def test_auth_values_reach_the_control_plane_env(render):
    values = {"auth": {"default_role": "read-only", "default_team": "research",
                       "admins": ["alice@acme.example.com", "bob@acme.example.com"],
                       "session": {"expiration_seconds": 86400}}}
    env = cp_env(render(F.CHART, [values]))
    F.expect_env(env, {"ADAPTIVE_AUTH__DEFAULT_ROLE": "read-only", "ADAPTIVE_AUTH__DEFAULT_TEAM": "research",
                       "ADAPTIVE_AUTH__SESSION__EXPIRATION_SECONDS": "86400"}, "control-plane")
    admins = env.get("ADAPTIVE_AUTH__ADMINS", "")
    try:
        parsed = json.loads(admins)
    except (TypeError, ValueError):
        parsed = admins
    assert parsed == values["auth"]["admins"], f"ADAPTIVE_AUTH__ADMINS: expected the JSON array " \
                                               f"{values['auth']['admins']}, found {admins!r}"


@pytest.mark.contract("ADP-CP-03")
def test_control_plane_env_defaults(render):
    env = cp_env(render(F.CHART))
    F.expect_env(env, {"ADAPTIVE_AUTH__DEFAULT_TEAM": "default", "ADAPTIVE_AUTH__DEFAULT_ROLE": "admin",
                       "ADAPTIVE_AUTH__SESSION__EXPIRATION_SECONDS": "518400",
                       "ADAPTIVE_HARMONY__SHARED_DIRECTORY__TYPE": "s3", "ADAPTIVE_SERVER__BIND": "0.0.0.0:9000",
                       "IMAGE_TAG": "control-plane:latest"}, "control-plane (defaults)")
    admins = env.get("ADAPTIVE_AUTH__ADMINS")
    assert admins is not None and json.loads(admins) == [], f"ADAPTIVE_AUTH__ADMINS default: expected [], found {admins!r}"


@pytest.mark.contract("ADP-CP-03")
def test_shared_dir_type_image_tag_and_extra_env_reach_the_control_plane(render):
    m = render(F.CHART, set={"controlPlane.sharedDirType": "azure", "controlPlane.image.tag": "cp:9.9",
                             "controlPlane.extraEnvVars.MY_FLAG": "on", "controlPlane.extraEnvVars.NUM": 3})
    F.expect_env(cp_env(m), {"ADAPTIVE_HARMONY__SHARED_DIRECTORY__TYPE": "azure", "IMAGE_TAG": "cp:9.9",
                             "MY_FLAG": "on", "NUM": "3"}, "control-plane")


@pytest.mark.contract("ADP-CP-03")
def test_control_plane_reads_its_secrets_as_d3_says(render):
    m = render(F.CHART)
    item = container(F.control_plane(m), "control-plane")
    env = F.effective_env(m, item)
    wrong = {var: env.get(var, "<absent>") for var, k in CP_ENV_SECRETS.items()
             if F.secret_ref(env.get(var)) != (F.CP_SECRET, k)}
    assert not wrong, f"expected {', '.join(f'{v} <- {F.CP_SECRET}/{k}' for v, k in CP_ENV_SECRETS.items())}; found {wrong}"
    assert F.HM_SECRET in F.env_from_secrets(item), \
        f"control-plane: expected envFrom Secret {F.HM_SECRET}, found {item.get('envFrom')}"


@pytest.mark.contract("ADP-CP-04")
def test_images_are_registry_repository_tag_verbatim(render):
    values = {"containerRegistry": "reg.example.com:5000/org",
              **F.pools("a", {"name": "b", "image": {"tag": "harmony:pool"}},
                        image={"repository": "repo/h", "tag": "harmony:1.2.3"}),
              "controlPlane": {"image": {"repository": "repo/c", "tag": "control-plane:4.5"}}}
    m = render(F.CHART, [values])
    expected = [(F.harmony(m), "harmony", "reg.example.com:5000/org/repo/h:harmony:1.2.3"),
                (F.pool(m, "a"), "harmony", "reg.example.com:5000/org/repo/h:harmony:1.2.3"),
                (F.pool(m, "b"), "harmony", "reg.example.com:5000/org/repo/h:harmony:pool"),
                (F.control_plane(m), "control-plane", "reg.example.com:5000/org/repo/c:control-plane:4.5")]
    wrong = [(ref(obj), want, container(obj, name).get("image")) for obj, name, want in expected
             if container(obj, name).get("image") != want]
    assert not wrong, f"(object, expected image, found): {wrong}"
    tag = F.env_of(m, F.pool(m, "b"), "harmony").get("IMAGE_TAG")
    assert tag == "harmony:pool", f"pool b IMAGE_TAG: expected its own tag harmony:pool, found {tag!r}"


@pytest.mark.contract("ADP-CP-04")
def test_default_images_use_the_default_registry_and_repository(render):
    m = render(F.CHART)
    registry = "<aws_account_id>.dkr.ecr.<region>.amazonaws.com"
    for obj, name, tag in ((F.harmony(m), "harmony", "harmony:latest"),
                           (F.control_plane(m), "control-plane", "control-plane:latest")):
        found = container(obj, name).get("image")
        assert found == f"{registry}/adaptive-repository:{tag}", \
            f"{name} default image: expected {registry}/adaptive-repository:{tag}, found {found!r}"
