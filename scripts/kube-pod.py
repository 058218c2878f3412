#!/usr/bin/env python3
"""Renders the StatefulSet's pod template as a Pod that podman 4.3's
`kube play` runs the way a kubelet would run the template.

    scripts/kube-pod.py [--statefulset deploy/k8s/statefulset.yaml]
        [--name rocketns-0] [--namespace default] [--image IMAGE]
        [--data DIR] [--host-ip 127.0.0.1]
        [--remoting-port PORT] [--http-port PORT] > pod.yaml
    podman kube play --seccomp-profile-root deploy/seccomp \\
        --configmap deploy/k8s/configmap.yaml pod.yaml

Everything comes from the StatefulSet's file: its labels, security
contexts, command, args, ports, resources and volumes. Only what podman 4.3
cannot take as Kubernetes takes it is changed (DECISIONS 24), and each
change is said in a comment at the top of the output (podman refuses
annotation values over 63 characters):

- seccomp: kube play ignores `securityContext.seccompProfile`; the same
  Localhost profile is named by the old pod and container annotations,
  which it honours (file looked up under --seccomp-profile-root).
- env: kube play rejects `fieldRef: metadata.namespace`; the value is the
  namespace given here. It does not expand `$(VAR)` in command or args; the
  kubelet does, and so does this script for variables with a value (other
  valueFrom sources are left as they are, and said so).
- probes: kube play runs every probe through a shell inside the container
  (httpGet as `curl -f`, exec as a CMD-SHELL healthcheck), and the image has
  neither a shell nor curl, so the probe would fail however healthy the
  server is. The probes are left out and named in the comment; ask their
  endpoints from the host on the published HTTP port instead.
- volumes: the claim template `data` becomes a hostPath (a directory the
  image's user can write), since a Pod has no volumeClaimTemplates.
- ports: hostPort and hostIP publish the ports named remoting and http of
  the rocketns container (--container, default the first) on the host;
  --image replaces that container's image only.
"""

import argparse
import copy
import re
import sys

import yaml


def load_statefulset(path):
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "StatefulSet":
                return doc
    sys.exit(f"{path}: no StatefulSet")


def expand(value, env):
    """$(VAR) as the kubelet expands it; $$ escapes, unknown names stay."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)


def localhost_profile(security_context):
    """The file name of a Localhost seccomp profile, or None."""
    profile = (security_context or {}).get("seccompProfile") or {}
    if profile.get("type") != "Localhost":
        return None
    return profile["localhostProfile"].rsplit("/", 1)[-1]


def render(args):
    sts = load_statefulset(args.statefulset)
    template = copy.deepcopy(sts["spec"]["template"])
    spec = template["spec"]
    notes = []
    containers = spec["containers"]
    names = [c["name"] for c in containers]
    target = args.container or names[0]
    if target not in names:
        sys.exit(f"no container {target} in the template (it has {', '.join(names)})")

    annotations = dict(template.get("metadata", {}).get("annotations") or {})
    profile = localhost_profile(spec.get("securityContext"))
    if profile:
        annotations["seccomp.security.alpha.kubernetes.io/pod"] = f"localhost/{profile}"
        notes.append(f"pod seccomp Localhost {profile} as the pod annotation")
    if spec.get("initContainers"):
        notes.append("initContainers passed through unchanged")

    for c in containers:
        profile = localhost_profile(c.get("securityContext"))
        if profile:
            key = f"container.seccomp.security.alpha.kubernetes.io/{c['name']}"
            annotations[key] = f"localhost/{profile}"
            notes.append(f"container {c['name']} seccomp Localhost {profile} as its annotation")
        env = {}
        for e in c.get("env") or []:
            source = e.get("valueFrom") or {}
            ref = source.get("fieldRef", {}).get("fieldPath")
            if ref == "metadata.namespace":
                e.pop("valueFrom")
                e["value"] = args.namespace
                notes.append(f"env {e['name']}: metadata.namespace as a value")
            elif source:
                notes.append(f"env {e['name']}: valueFrom left as is; $({e['name']}) not expanded")
            if "value" in e:
                env[e["name"]] = e["value"]
        for key in ("command", "args"):
            if key in c:
                c[key] = [expand(str(v), env) for v in c[key]]
        ports = {p["name"]: p["containerPort"] for p in c.get("ports") or [] if "name" in p}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.pop(kind, None)
            if probe is None:
                continue
            http = probe.get("httpGet")
            if http:
                port = ports.get(http["port"], http["port"])
                notes.append(f"{c['name']} {kind} left out: GET {http.get('path', '/')} on port {port}")
            else:
                notes.append(f"{c['name']} {kind} left out")
        if c["name"] != target:
            continue
        if args.image:
            c["image"] = args.image
        wanted = {"remoting": args.remoting_port, "http": args.http_port}
        for port_name, host_port in wanted.items():
            if host_port is None:
                continue
            if port_name not in ports:
                sys.exit(f"container {target} has no port named {port_name}")
            for p in c["ports"]:
                if p.get("name") == port_name:
                    p["hostPort"] = host_port
                    p["hostIP"] = args.host_ip
            notes.append(f"port {port_name} published on {args.host_ip}:{host_port}")

    claims = sts["spec"].get("volumeClaimTemplates") or []
    if len(claims) > 1:
        sys.exit("more than one claim template; --data maps exactly one")
    for claim in claims:
        name = claim["metadata"]["name"]
        if not args.data:
            sys.exit(f"--data DIR is needed for the claim template {name}")
        spec.setdefault("volumes", []).append(
            {"name": name, "hostPath": {"path": args.data, "type": "Directory"}}
        )
        notes.append(f"claim template {name} as hostPath {args.data}")

    metadata = {
        "name": args.name,
        "labels": template.get("metadata", {}).get("labels", {}),
        "annotations": annotations,
    }
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
    return pod, notes


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--statefulset", default="deploy/k8s/statefulset.yaml")
    p.add_argument("--name", default="rocketns-0")
    p.add_argument("--namespace", default="default")
    p.add_argument("--container", help="the rocketns container (default: the first)")
    p.add_argument("--image", help="replaces that container's image")
    p.add_argument("--data", help="host directory for the data claim")
    p.add_argument("--host-ip", default="127.0.0.1")
    p.add_argument("--remoting-port", type=int, help="host port for the port named remoting")
    p.add_argument("--http-port", type=int, help="host port for the port named http")
    args = p.parse_args()
    pod, notes = render(args)
    print(f"# Rendered from {args.statefulset} by scripts/kube-pod.py for podman kube play:")
    for note in notes:
        print(f"# - {note}")
    yaml.safe_dump(pod, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
