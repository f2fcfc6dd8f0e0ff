"""The deployment files: Kubernetes manifests valid against the Kubernetes schemas (strict, so a
typo fails), and every setting the files share — port, body limit, labels, Secret — agreeing
across the Dockerfile, nginx, compose, Kubernetes and the service itself."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import loopback
import pytest
import yaml
from packaging.requirements import Requirement

from cdshooks.settings import Settings
from conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
# The oldest Kubernetes minor still common on managed platforms, and the newest the package ships.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
MAX_BODY_BYTES = Settings.model_fields["MAX_BODY_BYTES"].default


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest(kind: str) -> dict:
    (found,) = [d for p in MANIFESTS for d in documents(p) if d["kind"] == kind]
    return found


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def healthcheck_command() -> list[str]:
    """The exec-form command of the image's HEALTHCHECK."""
    (arguments,) = [args for instruction, args in dockerfile() if instruction == "HEALTHCHECK"]
    return json.loads(arguments[arguments.index("CMD") + 3:])


def size_bytes(value: str) -> int:
    """nginx sizes: 10485760, 10m, 1024k."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[unit.lower()]


# Kubernetes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_against_the_kubernetes_schema(path, version):
    for document in documents(path):
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize("mistake", ["misspelt field", "wrong type"])
def test_a_mistake_in_a_manifest_fails_validation(mistake):
    broken = copy.deepcopy(manifest("Deployment"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    if mistake == "misspelt field":
        container["readinessProbe"]["httpGet"]["paht"] = container["readinessProbe"]["httpGet"].pop("path")
    else:
        broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secret():
    listed = documents(K8S / "kustomization.yaml")[0]["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS if p.name != "secret.example.yaml")


def _container() -> dict:
    return manifest("Deployment")["spec"]["template"]["spec"]["containers"][0]


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_deployment_probes_healthz_on_the_port_the_service_binds():
    container = _container()
    (port,) = container["ports"]
    assert str(port["containerPort"]) == _env(container)["CDSHOOKS_PORT"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}


def test_deployment_runs_non_root_on_a_read_only_root_with_a_writable_tmp():
    pod = manifest("Deployment")["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    env = _env(container)
    assert env["TMPDIR"] == "/tmp" and env["XDG_RUNTIME_DIR"] == "/tmp"


def test_database_url_secret_key_and_trusted_issuers_come_from_the_secret():
    pod = manifest("Deployment")["spec"]["template"]["spec"]
    env = _env(_container())
    secret = manifest("Secret")
    for name in ("CDSHOOKS_DATABASE_URL", "CDSHOOKS_SECRET_KEY"):   # one form-link key for every pod
        reference = env[name]["secretKeyRef"]
        assert reference["name"] == secret["metadata"]["name"] and reference["key"] in secret["stringData"]
    issuers = Path(env["CDSHOOKS_TRUSTED_ISSUERS"])
    mount = next(m for m in _container()["volumeMounts"] if m["mountPath"] == str(issuers.parent))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])["secret"]
    assert volume["secretName"] == secret["metadata"]["name"]
    assert issuers.name in [item["path"] for item in volume["items"]]
    assert all(item["key"] in secret["stringData"] for item in volume["items"])
    json.loads(secret["stringData"]["trusted-issuers.json"])


def test_service_pdb_and_autoscaler_point_at_the_deployment():
    deployment = manifest("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert manifest("Service")["spec"]["selector"].items() <= labels.items()
    assert manifest("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert manifest("PodDisruptionBudget")["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    target = manifest("HorizontalPodAutoscaler")["spec"]
    assert target["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": deployment["metadata"]["name"]}
    assert [m["resource"]["name"] for m in target["metrics"]] == ["cpu"]
    assert "cpu" in _container()["resources"]["requests"]   # utilization is relative to the request
    port = manifest("Service")["spec"]["ports"][0]["targetPort"]
    assert port in [p["name"] for p in _container()["ports"]]


def test_ingress_buffers_like_deploy_nginx_with_the_service_body_limit_and_public_host():
    ingress = manifest("Ingress")
    annotations = {k.split("/", 1)[1]: v for k, v in ingress["metadata"]["annotations"].items()}
    assert size_bytes(annotations["proxy-body-size"]) == MAX_BODY_BYTES
    assert annotations["proxy-request-buffering"] == annotations["proxy-buffering"] == "on"
    public = urlsplit(_env(_container())["CDSHOOKS_PUBLIC_BASE_URL"])
    assert public.scheme == "https" and [r["host"] for r in ingress["spec"]["rules"]] == [public.hostname]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == manifest("Service")["metadata"]["name"]
    assert backend["port"]["name"] in [p["name"] for p in manifest("Service")["spec"]["ports"]]


# nginx and compose ----------------------------------------------------------------------------

def _template() -> str:
    return (ROOT / "deploy" / "nginx" / "cdshooks.conf.template").read_text()


def test_nginx_takes_its_body_limit_from_the_service_variable():
    assert re.search(r"^\s*client_max_body_size \$\{CDSHOOKS_MAX_BODY_BYTES\};", _template(), re.M)


def test_nginx_template_renders_completely_and_refuses_a_missing_value():
    values = {"NGINX_PORT": "8080", "NGINX_UPSTREAMS": "/u.conf", "CDSHOOKS_MAX_BODY_BYTES": "1"}
    assert "${" not in loopback.render(_template(), values)
    with pytest.raises(KeyError, match="NGINX_PORT"):
        loopback.render(_template(), {k: v for k, v in values.items() if k != "NGINX_PORT"})


def _compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())


def test_compose_puts_nginx_before_two_replicas_on_postgres_with_a_volume():
    services = _compose()["services"]
    assert services["cdshooks"]["deploy"]["replicas"] == 2
    assert "postgres:5432" in services["cdshooks"]["environment"]["CDSHOOKS_DATABASE_URL"]
    volume = services["postgres"]["volumes"][0].split(":")[0]
    assert volume in _compose()["volumes"]
    mounts = dict(v.split(":")[:2][::-1] for v in services["nginx"]["volumes"])
    assert mounts["/etc/nginx/templates/default.conf.template"] == "./nginx/cdshooks.conf.template"
    upstreams = mounts[services["nginx"]["environment"]["NGINX_UPSTREAMS"]]
    servers = re.findall(r"^server (\S+):(\d+) ", (ROOT / "deploy" / upstreams).read_text(), re.M)
    assert servers == [("cdshooks", services["cdshooks"]["environment"]["CDSHOOKS_PORT"])]


def test_compose_gives_nginx_and_the_service_one_body_limit_and_the_public_url_of_nginx():
    services = _compose()["services"]
    nginx, service = services["nginx"]["environment"], services["cdshooks"]["environment"]
    assert int(nginx["CDSHOOKS_MAX_BODY_BYTES"]) == int(service["CDSHOOKS_MAX_BODY_BYTES"]) == MAX_BODY_BYTES
    published = services["nginx"]["ports"][0].split(":")[0]
    assert nginx["NGINX_PORT"] == services["nginx"]["ports"][0].split(":")[1]
    assert service["CDSHOOKS_PUBLIC_BASE_URL"].endswith(f":-http://localhost:{published}}}")
    substituted = re.fullmatch(r"\^\((.*)\)\$\$?", nginx["NGINX_ENVSUBST_FILTER"]).group(1).split("|")
    assert sorted(substituted) == sorted(set(re.findall(r"\$\{([A-Z0-9_]+)\}", _template())))


# Dockerfile and constraints -------------------------------------------------------------------

def test_image_installs_from_the_constraints_file():
    steps = dockerfile()
    copied = [i for i, (instruction, args) in enumerate(steps) if instruction == "COPY" and "constraints.txt" in args]
    installs = [i for i, (instruction, args) in enumerate(steps) if instruction == "RUN" and "pip install" in args]
    assert copied and installs and copied[0] < installs[0]
    for index in installs:
        assert re.search(r"--(constraint|requirement) constraints\.txt", steps[index][1]), steps[index]


def test_image_checks_its_data_at_build_time():
    steps = dockerfile()
    copied = {args.split()[0]: i for i, (instruction, args) in enumerate(steps) if instruction == "COPY"}
    check = next(i for i, (instruction, args) in enumerate(steps)
                 if instruction == "RUN" and re.search(r"\bcdshooks check\b", args))
    assert copied["policies"] < check and copied["mappings"] < check


def test_image_healthcheck_and_command_follow_the_configured_port():
    steps = dict((instruction, args) for instruction, args in dockerfile() if instruction in ("CMD", "EXPOSE"))
    assert healthcheck_command() == ["cdshooks", "health"]   # probes CDSHOOKS_PORT, as serve binds it
    assert json.loads(steps["CMD"]) == ["cdshooks", "serve"]
    env = " ".join(args for instruction, args in dockerfile() if instruction == "ENV")
    assert "CDSHOOKS_PORT=${PORT}" in env and steps["EXPOSE"] == "${PORT}"


def test_image_runs_as_the_non_root_user_the_manifests_expect():
    steps = dockerfile()
    user = next(args for instruction, args in steps if instruction == "USER")
    uid = re.search(r"--uid (\d+) (\S+)", next(a for i, a in steps if i == "RUN" and "useradd" in a))
    assert user == uid.group(2)
    assert int(uid.group(1)) == manifest("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]


def test_constraints_pin_every_runtime_dependency_within_its_range():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[_normal(requirement.name)] = spec.version
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in map(Requirement, dependencies):
        name = _normal(dependency.name)
        assert name in pins, f"{dependency.name} is not in constraints.txt: run `make constraints`"
        assert dependency.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {dependency}"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_file_the_image_copies_is_in_the_build_context():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    for instruction, args in dockerfile():
        if instruction == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source
