"""The Kubernetes artifacts of deploy/ checked without a cluster.

deploy/helm/hypersdk is rendered with the real `helm template` (the defaults, every optional part
turned on, and the operator's own Secret and claims) and linted with `helm lint --strict`; every
rendered document is validated against the Kubernetes JSON schemas that kubernetes-validate bundles
(strict: an unknown field is an error), the ServiceMonitor against prometheus-operator's CRD, and
the Argo manifests of deploy/argo against Argo Workflows' JSON schema and its full CRD (unknown
fields refused too). Each validator is shown a broken copy first, so that it cannot pass by
checking nothing. The rendered Deployment is then run: the real hypervisord with the chart's
arguments, config file and Secret, its probes' /health answered on both ports.

helm, the schemas' locations and their versions come from build/tools/deploy-tools.json, which
scripts/setup writes (nothing downloaded is kept in the repository)."""
import base64
import copy
import functools
import json
import os
import pathlib
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import jsonschema
import pytest
import yaml

try:  # missing, it fails this file's tests, not the collection of the whole suite
    import kubernetes_validate
except ImportError:
    kubernetes_validate = None

from conftest import BUILD, HSDK, ROOT
from ports import free_port

try:
    YamlLoader = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    YamlLoader = yaml.SafeLoader

CHART = ROOT / "deploy" / "helm" / "hypersdk"
ARGO = ROOT / "deploy" / "argo"
TOOLS = ROOT / "build" / "tools" / "deploy-tools.json"
HYPERVISORD = BUILD / "tools" / "hypervisord" / "hypervisord"
NAMESPACE = "hypersdk"
VALUES = {
    "default": [],
    "all-optional": ["-f", str(CHART / "ci" / "all-optional-values.yaml")],
    "existing-secret": ["-f", str(CHART / "ci" / "existing-secret-values.yaml")],
}


# ---- tools and schemas ---------------------------------------------------------------------------
# Looked up when a test first needs them (not at collection: every xdist worker collects every file).

@functools.cache
def tool(name):
    if kubernetes_validate is None:
        pytest.fail("kubernetes-validate is missing: run scripts/setup")
    if not TOOLS.exists():
        pytest.fail(f"{TOOLS} is missing: run scripts/setup (it installs helm and the schemas)")
    path = json.loads(TOOLS.read_text())["files"][name]
    assert pathlib.Path(path).exists(), f"{name}: {path} is gone: run scripts/setup again"
    return path


@functools.cache
def kubernetes_versions():
    """The oldest Kubernetes Chart.yaml's kubeVersion allows, and the newest the schemas know."""
    tool("helm")
    return ("1.25.0", kubernetes_validate.utils.latest_version())


def run(*cmd):
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


# Keywords whose value maps names to schemas (the map itself is no schema).
SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs", "dependentSchemas")


def strict(schema):
    """A copy of a JSON schema that refuses properties it does not name, as the API server's strict
    field validation (kubectl's default) does: additionalProperties false on every object schema
    with properties and no word of its own on extra ones."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: ({name: strict(s) for name, s in v.items()} if k in SCHEMA_MAPS and isinstance(v, dict) else strict(v))
           for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_validator(path, kind):
    """A validator for `kind` from the openAPIV3Schema of a CustomResourceDefinition file (OpenAPI
    3.0 schemas: draft 4 semantics; CEL rules are not evaluated)."""
    for crd in yaml.load_all(pathlib.Path(path).read_text(), Loader=YamlLoader):
        if crd and crd["spec"]["names"]["kind"] == kind:
            group = crd["spec"]["group"]
            return {f"{group}/{v['name']}": jsonschema.Draft4Validator(strict(v["schema"]["openAPIV3Schema"]))
                    for v in crd["spec"]["versions"] if v.get("served")}
    raise AssertionError(f"no CRD of kind {kind} in {path}")


@functools.cache
def argo_schema():
    schema = json.loads(pathlib.Path(tool("argo_workflows_schema")).read_text())
    schema = strict(schema)
    schema.pop("oneOf")
    schema["$ref"] = "#/definitions/io.argoproj.workflow.v1alpha1.WorkflowTemplate"
    return jsonschema.Draft202012Validator(schema)


@functools.cache
def servicemonitor_crd():
    return crd_validator(tool("servicemonitor_crd"), "ServiceMonitor")


@functools.cache
def argo_crd():
    return crd_validator(tool("argo_workflowtemplate_crd"), "WorkflowTemplate")


def schema_errors(doc):
    """Every schema error of one manifest (an empty list: valid). A kind no schema knows is an error."""
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind == "ServiceMonitor":
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in servicemonitor_crd()[api].iter_errors(doc)]
    if kind == "WorkflowTemplate":
        errors = [f"schema.json {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in argo_schema().iter_errors(doc)]
        errors += [f"CRD {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in argo_crd()[api].iter_errors(doc)]
        return errors
    errors = []
    for version in kubernetes_versions():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"Kubernetes {e.version} {'/'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(e.message)
    return errors


def assert_valid(doc):
    errors = schema_errors(doc)
    assert not errors, f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}:\n" + "\n".join(errors)


def assert_rejected(doc, why):
    assert schema_errors(doc), f"the validator took a broken {doc['kind']} ({why})"


# ---- rendering -------------------------------------------------------------------------------------

_renders = {}


def render(values="default", *extra):
    key = (values, *extra)
    if key not in _renders:
        out = run(tool("helm"), "template", "hypersdk", CHART, "--namespace", NAMESPACE, *VALUES[values], *extra)
        _renders[key] = [d for d in yaml.load_all(out, Loader=YamlLoader) if d]
    return copy.deepcopy(_renders[key])


def one(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} documents: {[d['kind'] for d in docs]}"
    return found[0]


def argo_docs():
    docs = []
    for path in sorted(ARGO.glob("*.yaml")):
        docs += [d for d in yaml.load_all(path.read_text(), Loader=YamlLoader) if d]
    return docs


# ---- the validators refuse what is broken -------------------------------------------------------

def test_the_validators_refuse_broken_documents():
    docs = render()
    deployment = one(docs, "Deployment")
    assert_valid(deployment)
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    assert_rejected(broken, "a port number that is a string")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 1
    assert_rejected(broken, "an unknown field spec.replica")
    broken = copy.deepcopy(deployment)
    del broken["spec"]["selector"]
    assert_rejected(broken, "no selector")

    service = one(docs, "Service")
    broken = copy.deepcopy(service)
    broken["spec"]["ports"][0]["protocol"] = 6
    assert_rejected(broken, "a protocol that is a number")

    monitor = one(render("all-optional"), "ServiceMonitor")
    assert_valid(monitor)
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["port"] = 8081
    assert_rejected(broken, "an endpoint port that is a number (it names the Service's port)")
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["metricsPath"] = "/metrics"
    assert_rejected(broken, "an unknown field metricsPath")

    template = one(argo_docs(), "WorkflowTemplate")
    assert_valid(template)
    tmpl = {t["name"]: t for t in template["spec"]["templates"]}
    broken = copy.deepcopy(template)
    broken_tmpl = {t["name"]: t for t in broken["spec"]["templates"]}
    broken_tmpl["precopy"]["synchronization"] = {"semaphore": tmpl["precopy"]["synchronization"]["semaphores"][0]}
    assert_rejected(broken, "synchronization.semaphore, removed in Argo Workflows 4 (semaphores)")
    broken = copy.deepcopy(template)
    {t["name"]: t for t in broken["spec"]["templates"]}["cutover-gate"]["suspend"] = {"duration": 60}
    assert_rejected(broken, "a suspend duration that is a number")
    broken = copy.deepcopy(template)
    broken["spec"]["templates"][0]["stepz"] = broken["spec"]["templates"][0].pop("steps")
    assert_rejected(broken, "an unknown field stepz")
    # The CRD on its own refuses it too (it is what the API server checks).
    assert list(argo_crd()["argoproj.io/v1alpha1"].iter_errors(broken))


# ---- the chart -------------------------------------------------------------------------------------

def test_helm_lint():
    for values in VALUES.values():
        out = run(tool("helm"), "lint", "--strict", CHART, *values)
        assert "1 chart(s) linted, 0 chart(s) failed" in out, out


@pytest.mark.parametrize("values", sorted(VALUES))
def test_every_rendered_document_is_valid(values):
    docs = render(values)
    kinds = sorted(d["kind"] for d in docs)
    for doc in docs:
        assert_valid(doc)
        assert doc["metadata"]["name"].startswith("hypersdk"), doc["metadata"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "hypersdk"
    expected = {
        "default": ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service"],
        "all-optional": ["ConfigMap", "Deployment", "PersistentVolumeClaim", "PersistentVolumeClaim", "Secret",
                         "Service", "ServiceAccount", "ServiceMonitor"],
        # The operator's Secret and claims: the chart makes neither.
        "existing-secret": ["ConfigMap", "Deployment", "Service"],
    }[values]
    assert kinds == expected


def test_the_deployment_is_the_runbooks():
    docs = render()
    deployment = one(docs, "Deployment")
    # kubectl exec/scale/rollout ... deploy/hypersdk, svc/hypersdk, configmap hypersdk.
    assert deployment["metadata"]["name"] == "hypersdk"
    assert one(docs, "Service")["metadata"]["name"] == "hypersdk"
    assert one(docs, "ConfigMap")["metadata"]["name"] == "hypersdk"
    pod = deployment["spec"]["template"]
    # kubectl logs -l app.kubernetes.io/name=hypersdk
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "hypersdk"
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["hypervisord"]
    args = container["args"]
    for flag, value in [("--listen", "0.0.0.0:8080"), ("--metrics-listen", "0.0.0.0:8081"),
                        ("--state-dir", "/var/lib/hypersdk"), ("--config", "/etc/hypersdk/config.yaml")]:
        assert args[args.index(flag) + 1] == value, args
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "metrics": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTP"}, container[probe]
    # Non-root, nothing written outside the volumes.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts["/var/lib/hypersdk"]]["persistentVolumeClaim"]["claimName"] == \
        one(docs, "PersistentVolumeClaim")["metadata"]["name"] == "hypersdk-data"
    assert volumes[mounts["/etc/hypersdk"]]["configMap"]["name"] == "hypersdk"
    assert container["envFrom"] == [{"secretRef": {"name": one(docs, "Secret")["metadata"]["name"]}}]

    service = one(docs, "Service")
    assert {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == \
        {("http", 8080, "http"), ("metrics", 8081, "metrics")}
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def test_the_flags_and_config_keys_are_hypervisords():
    """Only flags `hypervisord --help` lists; only config sections the daemon reads (docs/hypervisord.md)."""
    if not HYPERVISORD.exists():
        pytest.fail(f"{HYPERVISORD} is missing: build the project first")
    helptext = run(HYPERVISORD, "--help")
    known_sections = {"daemon", "providers", "export", "database", "scheduler", "webhook_secret", "webhooks",
                      "hyper2kvm", "auth", "security"}
    for values in VALUES:
        docs = render(values)
        (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
        for arg in container["args"]:
            if arg.startswith("--"):
                assert re.search(rf"(^|[\s,]){re.escape(arg)}\b", helptext), f"hypervisord has no {arg}"
        config = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
        assert set(config) <= known_sections, set(config) - known_sections
        # Every ${VAR} of the config is a variable the pod has (an unset one stops the daemon).
        names = set(re.findall(r"\$\{([^}]+)\}", one(docs, "ConfigMap")["data"]["config.yaml"]))
        if values != "existing-secret":
            assert names <= set(one(docs, "Secret")["data"]), names - set(one(docs, "Secret")["data"])
        for key in config["auth"]["api_keys"]:
            assert key["key"].startswith("${HYPERSDK_API_KEY_") and key["role"] in ("read", "operate", "admin")


def test_the_optional_parts():
    docs = render("all-optional")
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTPS"}
    assert "--tls-cert" in container["args"] and "--tls-key" in container["args"]
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"] == "hypersdk-daemon"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in pod["affinity"]
    assert container["resources"]["limits"]["memory"] == "8Gi"

    monitor = one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= one(docs, "Service")["metadata"]["labels"].items()

    claims = {c["metadata"]["name"]: c for c in docs if c["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {"hypersdk-data", "hypersdk-exports"}
    assert claims["hypersdk-exports"]["spec"]["storageClassName"] == ""
    config = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
    assert config["export"]["base_path"] == "/exports"
    assert config["webhook_secret"] == "${HYPERSDK_WEBHOOK_SECRET}"
    secret = one(docs, "Secret")["data"]
    assert base64.b64decode(secret["GOVC_URL"]).decode() == "https://vcenter.example.com/sdk"
    assert base64.b64decode(secret["GOVC_INSECURE"]).decode() == "1"
    assert len(base64.b64decode(secret["HYPERSDK_API_KEY_CI_RUNNER"])) == 40  # generated

    # The operator's Secret: no Secret of ours, the runbook's vsphere-credentials layout read as GOVC_*.
    docs = render("existing-secret")
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "hypersdk-env"}}]
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert env["GOVC_PASSWORD"] == {"name": "vsphere-credentials", "key": "password"}


def test_the_chart_refuses_what_cannot_work():
    for extra, message in [
        (["--set", "replicaCount=3"], "one SQLite database"),
        (["--set", "tls.enabled=true"], "tls.secretName"),
        (["--set", "auth.apiKeys[0].name=admin", "--set", "auth.apiKeys[0].key=short"], "too short"),
    ]:
        p = subprocess.run([tool("helm"), "template", "hypersdk", str(CHART), *extra], capture_output=True, text=True)
        assert p.returncode != 0 and message in p.stderr, (extra, p.stderr)


# ---- the chart's pod, run here --------------------------------------------------------------------

def _self_signed(folder):
    folder.mkdir()
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "1", "-subj", "/CN=localhost", "-keyout", folder / "tls.key", "-out", folder / "tls.crt")


@pytest.mark.parametrize("values", ["default", "all-optional"])
def test_hypervisord_runs_as_the_chart_says(values, tmp_path):
    """The Deployment's command, arguments, ConfigMap and Secret, with each volume a folder here and
    each port a free one on 127.0.0.1: the daemon starts, the probes' /health answers on both ports,
    the API takes the Secret's key and refuses no key, /metrics needs none."""
    if not HYPERVISORD.exists():
        pytest.fail(f"{HYPERVISORD} is missing: build the project first")
    # No webhook: nothing here may be contacted but loopback.
    docs = render(values, "--set-json", "config.webhooks=[]")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    paths = {}
    for mount in container["volumeMounts"]:
        local = tmp_path / mount["name"]
        volume = volumes[mount["name"]]
        if volume.get("configMap", {}).get("name") == one(docs, "ConfigMap")["metadata"]["name"]:
            local.mkdir()
            for name, text in one(docs, "ConfigMap")["data"].items():
                (local / name).write_text(text)
        elif volume.get("secret", {}).get("secretName") == "hypersdk-tls":  # ci/all-optional-values.yaml's
            _self_signed(local)
        else:
            local.mkdir()
        paths[mount["mountPath"]] = str(local)

    # One pass, longest first: /var/lib/hypersdk/exports is under the data volume, and the folders
    # here may themselves be under /tmp.
    mounted = re.compile("|".join(re.escape(m) for m in sorted(paths, key=len, reverse=True)) + r"(?=/|\s|$)", re.M)

    def local(text):
        return mounted.sub(lambda m: paths[m.group(0)], text)

    config = pathlib.Path(paths["/etc/hypersdk"]) / "config.yaml"
    config.write_text(local(config.read_text()))
    ports = {p["name"]: (p["containerPort"], free_port()) for p in container["ports"]}
    args = []
    for arg in container["args"]:
        for port, here in ports.values():
            arg = arg.replace(f"0.0.0.0:{port}", f"127.0.0.1:{here}")
        args.append(local(arg))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVC_", "HYPERSDK_"))}
    secret = {k: base64.b64decode(v).decode() for k, v in one(docs, "Secret")["data"].items()}
    env.update(secret)
    env.update({e["name"]: local(e["value"]) for e in container["env"] if "value" in e})

    log = open(tmp_path / "hypervisord.log", "wb")
    proc = subprocess.Popen([str(HYPERVISORD), *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

        def get(port_name, path, headers=None):
            probe = container["livenessProbe"]["httpGet"]
            scheme = probe["scheme"].lower() if port_name == probe["port"] else "http"
            request = urllib.request.Request(f"{scheme}://127.0.0.1:{ports[port_name][1]}{path}", headers=headers or {})
            try:
                with urllib.request.urlopen(request, timeout=5, context=tls if scheme == "https" else None) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"hypervisord exited {proc.returncode}:\n{(tmp_path / 'hypervisord.log').read_text()}"
            try:
                status, body = get("http", container["readinessProbe"]["httpGet"]["path"])
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "hypervisord.log").read_text()
            time.sleep(0.05)
        assert json.loads(body)["status"] == "healthy"
        assert get("metrics", "/health")[0] == 200
        status, metrics = get("metrics", "/metrics")
        assert status == 200 and "hypersdk_" in metrics
        admin = secret["HYPERSDK_API_KEY_ADMIN"]
        assert get("http", "/status", {"X-API-Key": admin})[0] == 200
        assert get("http", "/status")[0] == 401
        assert get("http", "/status", {"X-API-Key": "x" * 40})[0] == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
    assert rc == 0, (tmp_path / "hypervisord.log").read_text()
    # The state directory of the chart (the data volume) holds the database.
    assert (pathlib.Path(paths["/var/lib/hypersdk"]) / "hypersdk.db").exists()


# ---- the Argo workflow ----------------------------------------------------------------------------

def test_the_argo_manifests_are_valid():
    docs = argo_docs()
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "PersistentVolumeClaim", "WorkflowTemplate"]
    for doc in docs:
        assert_valid(doc)


def _used(text, scope):
    """The names of `scope` (inputs.parameters, workflow.parameters) a template's text refers to."""
    return set(re.findall(re.escape(scope) + r"\.([A-Za-z0-9_-]+)", text))


def test_the_warm_migration_workflow():
    docs = argo_docs()
    template = one(docs, "WorkflowTemplate")
    limits = one(docs, "ConfigMap")
    claim = one(docs, "PersistentVolumeClaim")
    spec = template["spec"]
    params = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
    templates = {t["name"]: t for t in spec["templates"]}
    assert spec["entrypoint"] in templates

    # Every template a step calls exists; every parameter a template names is declared.
    for t in spec["templates"]:
        declared = {p["name"] for p in t.get("inputs", {}).get("parameters", [])}
        text = json.dumps(t)
        assert _used(text, "inputs.parameters") <= declared, (t["name"], _used(text, "inputs.parameters") - declared)
        assert _used(text, "workflow.parameters") <= set(params), _used(text, "workflow.parameters") - set(params)
        for group in t.get("steps", []):
            for step in group:
                called = templates[step["template"]]
                given = {p["name"] for p in step.get("arguments", {}).get("parameters", [])}
                needed = {p["name"] for p in called.get("inputs", {}).get("parameters", []) if "value" not in p}
                assert needed <= given, (step["name"], needed - given)

    # The hsdk steps: hsdk migrate --warm --step precopy|cutover|status, no secret on the command line.
    commands = {}
    for t in spec["templates"]:
        if "container" in t:
            c = t["container"]
            line = " ".join(c["command"] + c["args"])
            step = re.match(r"hsdk migrate --warm --step (\w+) ", line)
            assert step, line
            commands[step.group(1)] = t
            for flag in ("--vm", "--out", "--format", "--url", "--username", "--password-env"):
                assert flag in c["args"], (t["name"], flag)
            assert c["args"][c["args"].index("--format") + 1] == "{{workflow.parameters.format}}"
            assert params["format"] == "qcow2"
            password_env = c["args"][c["args"].index("--password-env") + 1]
            env = {e["name"]: e for e in c["env"]}
            assert env[password_env]["valueFrom"]["secretKeyRef"]["name"] == "{{workflow.parameters.credentials-secret}}"
            others = c["args"][:c["args"].index("--password-env")] + c["args"][c["args"].index("--password-env") + 2:]
            assert not any("password" in a.lower() or "secret" in a.lower() for a in others), c["args"]
            assert c["args"][c["args"].index("--out") + 1].startswith("/migrations/")
            if step.group(1) != "status":
                assert c["args"][c["args"].index("--downtime-budget") + 1] == "{{workflow.parameters.downtime-budget}}"
            assert {"name": "migrations", "mountPath": "/migrations"} in c["volumeMounts"]
    assert set(commands) == {"precopy", "cutover", "status"}

    # Per VM, in order: the precopy rounds, the suspended gate, cutover, status.
    chain = [group[0]["template"] for group in templates["migrate-vm"]["steps"]]
    assert chain == ["precopy-rounds", "cutover-gate", "cutover", "status"], chain
    assert templates["cutover-gate"]["suspend"] == {}  # no duration: only argo resume goes on
    fan_out = templates[spec["entrypoint"]]["steps"][0][0]
    assert fan_out["template"] == "migrate-vm" and fan_out["withParam"] == "{{workflow.parameters.vms}}"

    # Precopy again while not converged, a bounded number of times.
    rounds = templates["precopy-rounds"]["steps"]
    assert rounds[0][0]["template"] == "precopy"
    again = rounds[1][0]
    assert again["template"] == "precopy-rounds"
    assert "steps.precopy.outputs.result, '$.converged'" in again["when"]
    assert "asInt(inputs.parameters.round) < asInt(inputs.parameters.maxRounds)" in again["when"]
    assert {p["name"]: p["value"] for p in again["arguments"]["parameters"]}["round"] == \
        "{{=asInt(inputs.parameters.round) + 1}}"
    assert int(params["max-precopy-rounds"]) > 0

    # The source host's semaphore, from the limits ConfigMap, on every step that moves data.
    for step in ("precopy", "cutover"):
        (semaphore,) = commands[step]["synchronization"]["semaphores"]
        assert semaphore["configMapKeyRef"] == {"name": "{{workflow.parameters.limits-configmap}}",
                                                "key": "{{inputs.parameters.host}}"}
    assert params["limits-configmap"] == limits["metadata"]["name"]
    assert limits["data"] and all(re.fullmatch(r"[1-9][0-9]*", v) for v in limits["data"].values())

    # The output volume.
    (volume,) = spec["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "{{workflow.parameters.output-pvc}}"
    assert params["output-pvc"] == claim["metadata"]["name"]


def test_the_workflow_steps_are_hsdk_commands():
    """Every flag of the steps' command lines is one `hsdk migrate --help` lists, and so is each step."""
    if not HSDK.exists():
        pytest.fail(f"{HSDK} is missing: build the project first")
    helptext = run(HSDK, "migrate", "--help")
    steps = re.search(r"--step TEXT:\{([^}]*)\}", helptext)
    assert steps, helptext
    template = one(argo_docs(), "WorkflowTemplate")
    for t in template["spec"]["templates"]:
        if "container" in t:
            words = t["container"]["command"] + t["container"]["args"]
            assert words[:2] == ["hsdk", "migrate"], words
            for word in words[2:]:
                if word.startswith("--"):
                    assert re.search(rf"(^|[\s,]){re.escape(word)}\b", helptext), f"hsdk migrate has no {word}"
            assert words[words.index("--step") + 1] in steps.group(1).split(","), words
    formats = re.search(r"--format TEXT:\{([^}]*)\}", helptext)
    params = {p["name"]: p for p in template["spec"]["arguments"]["parameters"]}
    assert set(params["format"]["enum"]) <= set(formats.group(1).split(",")), formats.group(0)
