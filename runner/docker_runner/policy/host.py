"""What a container may share with the host or other containers: the HostConfig checks (pure)."""

from __future__ import annotations

import ipaddress
import re
from fnmatch import fnmatchcase

from .fields import Fields, denied
from .model import Allow

# (HostConfig field, policy rule, the Allow attribute that lifts it): on when set to anything but empty
_SWITCHES = (
    ("Devices", "devices", "devices"),
    ("DeviceCgroupRules", "devices", "devices"),
    ("VolumesFrom", "volumesFrom", "volumes_from"),
    ("Links", "links", "links"),
)
# Present at all, even empty, these replace the engine's masks over /proc and /sys.
_MASKS = ("MaskedPaths", "ReadonlyPaths")


def check_switches(host: Fields, allow: Allow) -> None:
    if host.flag("Privileged") and not allow.privileged:
        raise denied("HostConfig.Privileged", "privileged", "denied by default")
    for field, rule, attribute in _SWITCHES:
        if host.items(field) and not getattr(allow, attribute):
            raise denied(f"HostConfig.{field}", rule, "denied by default")
    if host.text("CgroupParent") and not allow.cgroup_parent:
        raise denied("HostConfig.CgroupParent", "cgroupParent", "denied by default")
    for field in _MASKS:
        if host.data.get(field) is None:
            continue
        host.texts(field)
        if not allow.unmasked_paths:
            raise denied(f"HostConfig.{field}", "unmaskedPaths", "overriding the engine's masked paths is denied")
    runtime = host.text("Runtime")
    if runtime and runtime != DEFAULT_RUNTIME and runtime not in allow.runtimes:
        raise denied("HostConfig.Runtime", "runtimes", f"runtime {runtime!r} is not the engine's default")


def check_oom(host: Fields, allow: Allow) -> None:
    if allow.oom_protection:
        return
    adjustment = host.number("OomScoreAdj")
    if adjustment is not None and adjustment < 0:
        raise denied("HostConfig.OomScoreAdj", "oomProtection", "below 0 makes the host's processes die first")
    if host.flag("OomKillDisable"):
        raise denied("HostConfig.OomKillDisable", "oomProtection", "the OOM killer must be able to end the container")


_NAMESPACE_FIELDS = (
    ("NetworkMode", "network"),
    ("PidMode", "pid"),
    ("IpcMode", "ipc"),
    ("UTSMode", "uts"),
    ("UsernsMode", "userns"),
    ("CgroupnsMode", "cgroup"),
    ("Cgroup", "cgroup"),
)
DEFAULT_RUNTIME = "runc"  # the engine's own: naming it changes nothing

# Network modes of the engine's own networks (exact spelling: others are names of user networks).
_BUILT_IN_NETWORKS = ("", "default", "bridge", "none")


def check_namespaces(host: Fields, allow: Allow) -> None:
    for field, namespace in _NAMESPACE_FIELDS:
        mode = host.text(field) or ""
        folded = mode.strip().lower()
        if folded == "host" and namespace not in allow.host_namespaces:
            raise denied(f"HostConfig.{field}", "hostNamespaces", f"the host {namespace} namespace is denied")
        # Cgroup takes only "container:<id>" besides empty
        joins = folded.startswith("container:") or (field == "Cgroup" and mode != "")
        if joins and not allow.container_namespaces:
            raise denied(
                f"HostConfig.{field}", "containerNamespaces", "joining another container's namespace is denied"
            )
    network = host.text("NetworkMode") or ""
    folded = network.strip().lower()
    if folded != "host" and not folded.startswith("container:"):
        check_network(network, "HostConfig.NetworkMode", allow)


def check_network(network: str, field: str, allow: Allow) -> None:
    """A network to join: the engine's own, or a user network the policy names."""
    if network in _BUILT_IN_NETWORKS:
        return
    if network.strip().lower() == "host":
        if "network" not in allow.host_namespaces:
            raise denied(field, "hostNamespaces", "the host network namespace is denied")
        return
    if not any(fnmatchcase(network, pattern) for pattern in allow.networks):
        raise denied(field, "networks", f"network {network!r} was not created for the runner's containers")


def check_networking_config(body: Fields, allow: Allow) -> None:
    endpoints = body.child("NetworkingConfig").child("EndpointsConfig")
    for name in endpoints.data:
        settings = endpoints.child(name)
        if name.strip().lower().startswith("container:"):
            raise denied(settings.where, "containerNamespaces", "joining another container's namespace is denied")
        check_network(name, settings.where, allow)
        network_id = settings.text("NetworkID")
        if network_id:  # the engine joins this one rather than the name
            check_network(network_id, settings.name("NetworkID"), allow)
        if settings.texts("Links") and not allow.links:
            raise denied(settings.name("Links"), "links", "denied by default")


def _capability(name: str) -> str:
    text = name.strip().upper()
    return text[4:] if text.startswith("CAP_") else text


def check_capabilities(host: Fields, allow: Allow) -> None:
    allowed = {_capability(name) for name in allow.cap_add}
    for index, name in enumerate(host.texts("CapAdd")):
        if _capability(name) not in allowed:
            raise denied(f"HostConfig.CapAdd[{index}]", "capAdd", f"capability {name} is denied")


# Go's strconv.ParseBool, as the engine reads no-new-privileges=<bool> and writable-cgroups=<bool>
_GO_TRUE = "(?:1|t|T|TRUE|true|True)"
_GO_FALSE = "(?:0|f|F|FALSE|false|False)"
# An MCS level of one sensitivity and at most two categories: no range, so no dominance over others.
_LEVEL = r"s0(?::c\d{1,4}(?:,c\d{1,4})?)?"
_SAFE_SECURITY_OPT = re.compile(
    rf"^(?:no-new-privileges(?:[=:]{_GO_TRUE})?|writable-cgroups[=:]{_GO_FALSE}"
    rf"|apparmor[=:]docker-default|label[=:]level:{_LEVEL})$"
)


def check_security_opt(host: Fields, allow: Allow) -> None:
    if allow.weaker_security_opt:
        host.texts("SecurityOpt")
        return
    for index, option in enumerate(host.texts("SecurityOpt")):
        if not _SAFE_SECURITY_OPT.match(option) and option not in allow.security_opts:
            raise denied(
                f"HostConfig.SecurityOpt[{index}]",
                "weakerSecurityOpt",
                f"{option!r} is not a security option known to keep confinement (list it in securityOpts)",
            )


def check_sysctls(host: Fields, allow: Allow) -> None:
    for name in host.string_map("Sysctls"):
        if not any(fnmatchcase(name, pattern) for pattern in allow.sysctls):
            raise denied(f"HostConfig.Sysctls.{name}", "sysctls", "this sysctl is denied")


_EVERY_INTERFACE = "0.0.0.0"


def _host_ip(text: str) -> str:
    """The address the engine publishes on; empty or unparseable means every interface to it."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return _EVERY_INTERFACE
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def check_port_bindings(host: Fields, allow: Allow) -> None:
    allowed = {str(ipaddress.ip_address(address)) for address in allow.publish_host_ips}
    if host.flag("PublishAllPorts") and _EVERY_INTERFACE not in allowed:
        raise denied("HostConfig.PublishAllPorts", "publishHostIps", "publishes on every interface of the host")
    bindings = host.child("PortBindings")
    for port in bindings.data:
        for binding in bindings.objects(port):
            binding.text("HostPort")
            address = _host_ip(binding.text("HostIp") or "")
            if address not in allowed:
                where = "every interface" if address == _EVERY_INTERFACE else address
                raise denied(binding.name("HostIp"), "publishHostIps", f"publishing on {where} of the host is denied")


# A plain GPU request: the engine's own GPU driver (nvidia), for "gpu" with compute and utility at most.
_GPU_DRIVERS = ("", "nvidia")
_GPU_CAPABILITIES = frozenset({"gpu", "compute", "utility"})


def _gpu_request_refusal(request: Fields) -> str | None:
    """Why the request is more than a plain GPU request (reading its fields typed); None if it is not."""
    driver = request.text("Driver") or ""
    request.number("Count")
    request.texts("DeviceIDs")
    capabilities = request.objects_of_texts("Capabilities")
    options = request.string_map("Options")
    if driver not in _GPU_DRIVERS:
        return f"device driver {driver!r} is not the GPU driver"
    if not capabilities or any("gpu" not in caps or not set(caps) <= _GPU_CAPABILITIES for caps in capabilities):
        return f"capabilities {capabilities!r} are more than {sorted(_GPU_CAPABILITIES)} with gpu"
    if options:
        return "driver options are denied"
    return None


def check_device_requests(host: Fields, allow: Allow) -> None:
    requests = host.objects("DeviceRequests")
    for request in requests:
        refusal = _gpu_request_refusal(request)
        if refusal is not None and not allow.any_device_requests:
            raise denied(request.where, "anyDeviceRequests", refusal)
    if requests and not (allow.gpus or allow.any_device_requests):
        raise denied("HostConfig.DeviceRequests", "gpus", "denied by default")
