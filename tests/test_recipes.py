"""The container and Kubernetes recipes under fluent-bit-config/ (DESIGN.md §13, issue 17),
checked offline:

* every Kubernetes object of the DaemonSet manifests (IRSA, EKS Pod Identity) validates
  against the Kubernetes schemas bundled by ``kubernetes-validate`` (strict: unknown fields
  fail); the Helm values' embedded objects (env, volumes, mounts, the ServiceAccount) are put
  into the Pod and ServiceAccount the chart renders them into and validated the same way (no
  helm binary here to render the chart itself);
* what the recipes promise: the pipeline has ``Workers 2`` and loads the .so where the image
  puts it, hot reload is off, IRSA has its role annotation and Pod Identity none, host logs are
  mounted; the plugin itself accepts each recipe's ``[OUTPUT]`` (the C host runs its init);
* the Dockerfiles: the runtime stage runs nothing (distroless), no BuildKit-only syntax,
  ``ARG FLUENT_BIT_IMAGE`` defaults to the Fluent Bit release the tests target.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import CREDS_ENV
from tests.helpers import host as H

kv = pytest.importorskip("kubernetes_validate",
                         reason="kubernetes-validate is not installed (tests/requirements.txt)")

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "fluent-bit-config" / "kubernetes"
DOCKER = REPO / "fluent-bit-config" / "docker"
MANIFESTS = ["daemonset-irsa.yaml", "daemonset-pod-identity.yaml"]
K8S_VERSION = "1.30.0"  # oldest EKS standard-support line the recipes target
SO_IN_IMAGE = "/fluent-bit/bin/libflb_sigv4.so"
FLUENT_BIT_RELEASE = "5.1.1"


def validate(obj: dict):
    kv.validate(obj, K8S_VERSION, strict=True)


def docs(name: str) -> list:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def by_kind(objs: list, kind: str) -> list:
    return [o for o in objs if o["kind"] == kind]


def conf_sections(text: str) -> list:
    """(section, {key_lower: value}) pairs of a classic Fluent Bit config."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", s)
        if m:
            out.append((m.group(1).upper(), {}))
        elif out:
            k, _, v = s.partition(" ")
            out[-1][1][k.lower()] = v.strip()
    return out


def plugin_accepts(output: dict, tmp_path: Path):
    """The C host inits the plugin with this [OUTPUT] (no flush): the recipe's properties are
    ones the plugin takes."""
    props = {k: v for k, v in output.items()
             if k not in ("name", "match", "workers", "retry_limit", "storage.total_limit_size")}
    conf = H.write_config(tmp_path / f"recipe{len(list(tmp_path.iterdir()))}.conf", [props],
                          log_level="info")
    res = H.run_host(conf, [], env=CREDS_ENV, timeout=60)
    assert res.returncode == H.EXIT_OK, res.describe()


@pytest.mark.parametrize("name", MANIFESTS)
def test_daemonset_manifest_validates_and_keeps_its_promises(name, plugin_so, tmp_path):
    objs = docs(name)
    for o in objs:
        validate(o)
    assert {o["kind"] for o in objs} >= {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet",
                                         "ClusterRole", "ClusterRoleBinding"}
    (cm,) = by_kind(objs, "ConfigMap")
    (ds,) = by_kind(objs, "DaemonSet")
    (sa,) = by_kind(objs, "ServiceAccount")
    plugins = conf_sections(cm["data"]["plugins.conf"])
    assert plugins == [("PLUGINS", {"path": SO_IN_IMAGE})]
    sections = conf_sections(cm["data"]["fluent-bit.conf"])
    service = dict(sections)["SERVICE"]
    outputs = [kv_ for sec, kv_ in sections if sec == "OUTPUT"]
    assert [o["name"] for o in outputs] == ["sigv4_http"]
    assert outputs[0]["workers"] == "2"
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert service["plugins_file"] == "/fluent-bit/config/plugins.conf"
    assert mounts["/fluent-bit/config"] == "config"
    assert "/var/log" in mounts
    assert any(v.get("hostPath", {}).get("path") == "/var/log" for v in pod["volumes"])
    assert not any("hot-reload" in a or "hot_reload" in a for a in c.get("args", []))
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    annotations = sa["metadata"].get("annotations") or {}
    if "irsa" in name:
        assert annotations.get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::")
    else:
        assert "eks.amazonaws.com/role-arn" not in annotations
    plugin_accepts(outputs[0], tmp_path)


def test_validation_rejects_a_broken_manifest():
    """The schema check can fail: a DaemonSet with a misspelt field is refused."""
    (ds,) = by_kind(docs(MANIFESTS[0]), "DaemonSet")
    ds["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kv.ValidationError):
        validate(ds)


def test_helm_values_embedded_objects_validate_and_hot_reload_is_off(plugin_so, tmp_path):
    values = yaml.safe_load((K8S / "helm-values.yaml").read_text())
    assert values["hotReload"]["enabled"] is False
    # what the chart renders from these values: the pod of its DaemonSet, its ServiceAccount
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "fluent-bit"},
           "spec": {"serviceAccountName": "fluent-bit",
                    "containers": [{"name": "fluent-bit",
                                    "image": f"{values['image']['repository']}:"
                                             f"{values['image']['tag']}",
                                    "imagePullPolicy": values["image"]["pullPolicy"],
                                    "env": values["env"],
                                    "volumeMounts": values["extraVolumeMounts"]}],
                    "initContainers": values.get("initContainers") or [],
                    "volumes": values["extraVolumes"]}}
    validate(pod)
    validate({"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "fluent-bit",
                           "annotations": values["serviceAccount"]["annotations"]}})
    service = dict(conf_sections(values["config"]["service"]))["SERVICE"]
    assert service["plugins_file"] == "/fluent-bit/etc/plugins.conf"
    (out,) = [kv_ for sec, kv_ in conf_sections(values["config"]["outputs"]) if sec == "OUTPUT"]
    assert out["name"] == "sigv4_http" and out["workers"] == "2"
    plugin_accepts(out, tmp_path)


def stages(dockerfile: Path) -> list:
    """(FROM line, [instructions]) per stage; continuation lines joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.upper().startswith("FROM "):
            out.append((s, []))
        elif out:
            out[-1][1].append(s)
    return out


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.prebuilt"])
def test_dockerfiles_fit_the_official_images(name):
    df = DOCKER / name
    text = df.read_text()
    assert f"ARG FLUENT_BIT_IMAGE=fluent/fluent-bit:{FLUENT_BIT_RELEASE}\n" in text
    assert "--mount" not in text and "--chmod" not in text  # legacy builder
    final_from, final = stages(df)[-1]
    assert final_from == "FROM ${FLUENT_BIT_IMAGE}"
    assert not [i for i in final if i.upper().startswith("RUN")], "distroless: no shell"
    assert any(i.startswith("COPY") and i.endswith(SO_IN_IMAGE) for i in final), final
    plugins = conf_sections((DOCKER / "plugins.conf").read_text())
    assert plugins == [("PLUGINS", {"path": SO_IN_IMAGE})]
    if name == "Dockerfile":
        builder = stages(df)[0][1]
        assert any("tests/build_release.sh" in i for i in builder), "zig, glibc 2.31"

