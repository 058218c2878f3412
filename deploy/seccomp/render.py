#!/usr/bin/env python3
"""Renders deploy/seccomp/rocketns.json from a container engine's default
seccomp profile (containers-common's /usr/share/containers/seccomp.json,
which podman uses; moby's default.json has the same format).

    python3 deploy/seccomp/render.py /usr/share/containers/seccomp.json \
        > deploy/seccomp/rocketns.json
    python3 deploy/seccomp/render.py --verify deploy/seccomp/rocketns.json

Why render instead of editing the engine's file: that file is in the
engines' own format, whose rules depend on the container's capabilities and
architecture ("includes"/"excludes", "archMap"). podman, Docker and CRI-O
evaluate those conditions; containerd does not: it reads a Localhost
profile as a plain OCI runtime-spec `linux.seccomp` object, ignoring the
conditions, so every capability-gated allow rule applies and the profile is
broader than the default (seen here: under runc with the file read that
way, kcmp and NETLINK_AUDIT sockets were allowed for a container without
capabilities; podman's default refuses both).

So the output is plain OCI, read the same way by every engine: the default
profile as it applies to a container with no capabilities (Pod Security
"restricted" drops ALL) on x86-64 or arm64, plus one rule allowing
io_uring_setup, io_uring_enter and io_uring_register, and nothing else.
- rules gated on a capability being held are dropped (the container holds
  none); rules gated on a capability being absent are kept unconditionally;
- rules gated on x86 or arm architectures are kept unconditionally: the
  syscalls they name exist only there, and runc ignores a name the running
  architecture does not have; rules for other architectures are dropped;
- "architectures" lists the little-endian families of x86-64 and arm64
  (one seccomp filter cannot mix byte orders).
Any other condition (kernel version, excluded architectures) is refused
rather than guessed.
"""
import json
import sys

IO_URING = ["io_uring_enter", "io_uring_register", "io_uring_setup"]
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
          "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
# The same families as the engines name them in "includes".
ENGINE_ARCHES = {"amd64", "x86", "x32", "arm64", "arm"}
# The fields of the OCI runtime spec's LinuxSyscall and LinuxSeccompArg.
RULE_KEYS = ("names", "action", "errnoRet", "args")
ARG_KEYS = ("index", "value", "valueTwo", "op")


def die(msg):
    sys.exit(f"render.py: {msg}")


def applies(rule):
    """Whether `rule` is in force for a container without capabilities."""
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    for cond in (inc, exc):
        unknown = set(cond) - {"caps", "arches"}
        if unknown:
            die(f"unsupported condition {sorted(unknown)} on {rule['names']}")
    if exc.get("arches"):
        die(f"unsupported excluded arches on {rule['names']}")
    if inc.get("arches") and not set(inc["arches"]) & ENGINE_ARCHES:
        return False
    return not inc.get("caps")


def oci_rule(rule):
    names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
    if not names:
        die(f"rule without names: {rule}")
    if any(n in IO_URING for n in names):
        die(f"the source already names io_uring in a rule: {names}")
    out = {"names": names, "action": rule["action"]}
    if rule.get("errnoRet") is not None:
        out["errnoRet"] = rule["errnoRet"]
    # valueTwo only matters to SCMP_CMP_MASKED_EQ; 0 is its default.
    args = [{k: a[k] for k in ARG_KEYS if k != "valueTwo" or a.get(k)}
            for a in (rule.get("args") or [])]
    if args:
        out["args"] = args
    return out


def render(src):
    if src.get("architectures"):
        die("source is already flat (has 'architectures')")
    rules = [oci_rule(r) for r in src["syscalls"] if applies(r)]
    rules.append({"names": IO_URING, "action": "SCMP_ACT_ALLOW"})
    out = {"defaultAction": src["defaultAction"]}
    if src.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = src["defaultErrnoRet"]
    out["architectures"] = ARCHES
    out["syscalls"] = rules
    return out


def verify(profile):
    """Structural checks of a rendered profile: plain OCI, io_uring once."""
    top = set(profile) - {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}
    if top:
        die(f"not plain OCI: top-level {sorted(top)}")
    if profile["defaultAction"] == "SCMP_ACT_ALLOW":
        die("defaultAction allows everything")
    uring = 0
    for r in profile["syscalls"]:
        extra = set(r) - set(RULE_KEYS)
        if extra:
            die(f"not plain OCI: {sorted(extra)} in rule {r['names']}")
        if any(n.startswith("io_uring") for n in r["names"]):
            if sorted(r["names"]) != IO_URING or r["action"] != "SCMP_ACT_ALLOW" or "args" in r:
                die(f"io_uring rule is not exactly {IO_URING}: {r}")
            uring += 1
    if uring != 1:
        die(f"{uring} io_uring rules, want 1")


def main(argv):
    if len(argv) == 3 and argv[1] == "--verify":
        with open(argv[2]) as f:
            verify(json.load(f))
        return
    if len(argv) != 2:
        die("usage: render.py SOURCE.json | render.py --verify PROFILE.json")
    with open(argv[1]) as f:
        out = render(json.load(f))
    verify(out)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
