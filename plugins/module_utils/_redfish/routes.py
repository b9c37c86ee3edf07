# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The URLs of carrier-redfish and what each method does (the app has authorised the caller already)."""

from __future__ import annotations

import hashlib

from ansible_collections.picluster.carrier.plugins.module_utils._redfish import resources as res
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import ROLES
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.app import json_body, reply
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.errors import RedfishError
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.nodes import RESET_TYPES
from ansible_collections.picluster.carrier.plugins.module_utils._sensors import SensorReader

ROOT = res.ROOT
BOOT_KEYS = ("BootSourceOverrideTarget", "BootSourceOverrideEnabled", "BootSourceOverrideMode")
SYSTEM_READ_ONLY = {"@odata.id", "@odata.type", "Id", "Name", "PowerState", "Status", "SystemType", "Manufacturer",
                    "Model", "HostName", "Links", "Actions", "SerialConsole", "Description"}


def missing(path):
    return RedfishError("ResourceMissingAtURI", path)


def system_etag(host, override):
    text = "%s:%d:%s:%s" % (host, override["generation"], override["target"], override["enabled"])
    return '"%s"' % hashlib.sha256(text.encode()).hexdigest()[:20]


def _matches(header, etag):
    """Whether an If-Match header allows a change of the resource whose ETag is ``etag`` (no header: yes)."""
    if header is None:
        return True
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in [t[2:] if t.startswith("W/") else t for t in tags]


def _node(service, host, path):
    node = service.nodes.systems.get(host)
    if node is None:
        raise missing(path)
    return node


def _system_body(service, node):
    override = service.nodes.boot_override(node)
    lines = service.nodes.lines(node)
    body = res.system(node, service.nodes.power_state(lines), override, service.nodes.boot_targets(node), RESET_TYPES,
                      service.manager, service.config["console_host"])
    return body, system_etag(node.host, override)


def _check_boot_patch(body):
    """``(target, enabled)`` of a PATCH body; RedfishError for anything else in it."""
    for key in body:
        if key == "Boot":
            continue
        if key in SYSTEM_READ_ONLY:
            raise RedfishError("PropertyNotWritable", key)
        raise RedfishError("PropertyUnknown", key)
    boot = body.get("Boot")
    if not isinstance(boot, dict) or not boot:
        raise RedfishError("PropertyValueTypeError", boot, "Boot") if "Boot" in body else RedfishError("NoOperation")
    for key, value in boot.items():
        if key not in BOOT_KEYS:
            raise RedfishError("PropertyUnknown", "Boot/" + key)
        if not isinstance(value, str):
            raise RedfishError("PropertyValueTypeError", value, "Boot/" + key)
    if boot.get("BootSourceOverrideMode", "UEFI") != "UEFI":
        raise RedfishError("PropertyValueNotInList", boot["BootSourceOverrideMode"], "BootSourceOverrideMode")
    return boot.get("BootSourceOverrideTarget"), boot.get("BootSourceOverrideEnabled")


def register_systems(app, service):
    from flask import request

    @app.get(ROOT + "/Systems")
    def systems():
        return reply(res.collection("ComputerSystemCollection", ROOT + "/Systems",
                                    ["%s/Systems/%s" % (ROOT, h) for h in sorted(service.nodes.systems)]))

    @app.route(ROOT + "/Systems/<host>", methods=["GET", "PATCH"])
    def system(host):
        node = _node(service, host, request.path)
        if request.method == "GET":
            body, etag = _system_body(service, node)
            return reply(body, headers={"ETag": etag})
        target, enabled = _check_boot_patch(json_body(request))
        override = service.nodes.boot_override(node)
        if not _matches(request.headers.get("If-Match"), system_etag(host, override)):
            raise RedfishError("PreconditionFailed")
        service.nodes.set_boot_override(node, target, enabled, expect_generation=override["generation"])
        body, etag = _system_body(service, node)
        return reply(body, headers={"ETag": etag})

    @app.post(ROOT + "/Systems/<host>/Actions/ComputerSystem.Reset")
    def reset(host):
        node = _node(service, host, request.path)
        body = json_body(request)
        for key in body:
            if key != "ResetType":
                raise RedfishError("ActionParameterNotSupported", key, "ComputerSystem.Reset")
        if "ResetType" not in body:
            raise RedfishError("ActionParameterMissing", "ComputerSystem.Reset", "ResetType")
        reset_type = body["ResetType"]
        if reset_type not in RESET_TYPES:
            raise RedfishError("ActionParameterValueNotInList", reset_type, "ResetType", "ComputerSystem.Reset")

        def action():
            try:
                service.nodes.reset(node, reset_type)
            except RedfishError as exc:
                return exc.status, exc.body()
            return 204, None

        result, task = service.tasks.run("Reset %s (%s)" % (host, reset_type), action)
        if task is None:
            return reply(result[1], result[0])
        monitor = "%s/TaskService/TaskMonitors/%s" % (ROOT, task.id)
        return reply(service.tasks.resource(task), 202, headers={"Location": monitor, "Retry-After": "1"})


def _readings(service, spec):
    board = service.nodes.new_board(spec)
    return SensorReader(board).read()


def register_chassis(app, service):
    from flask import request

    def spec_of(name):
        spec = service.nodes.boards.get(name)
        if spec is None:
            raise missing(request.path)
        return spec

    def kinds(spec):
        profile = spec["board"].profile
        return bool(profile.sensors or profile.fans), bool(profile.monitors)

    @app.get(ROOT + "/Chassis")
    def chassis_list():
        return reply(res.collection("ChassisCollection", ROOT + "/Chassis",
                                    ["%s/Chassis/%s" % (ROOT, b) for b in sorted(service.nodes.boards)]))

    @app.get(ROOT + "/Chassis/<name>")
    def chassis(name):
        spec = spec_of(name)
        return reply(res.chassis(spec, service.manager, *kinds(spec)))

    @app.get(ROOT + "/Chassis/<name>/Thermal")
    def thermal(name):
        spec = spec_of(name)
        if not kinds(spec)[0]:
            raise missing(request.path)
        return reply(res.thermal(name, _readings(service, spec)))

    @app.get(ROOT + "/Chassis/<name>/Power")
    def power(name):
        spec = spec_of(name)
        if not kinds(spec)[1]:
            raise missing(request.path)
        return reply(res.power(name, _readings(service, spec)))

    @app.get(ROOT + "/Managers")
    def managers():
        return reply(res.collection("ManagerCollection", ROOT + "/Managers",
                                    ["%s/Managers/%s" % (ROOT, service.manager)]))

    @app.get(ROOT + "/Managers/<name>")
    def manager(name):
        if name != service.manager:
            raise missing(request.path)
        return reply(res.manager(name, service.config, service.nodes))


def register_root(app, service):
    from flask import Response

    @app.get("/redfish")
    def versions():
        return reply({"v1": ROOT + "/"})

    @app.get(ROOT + "/")
    def service_root():
        return reply(res.service_root(service.manager))

    @app.get(ROOT + "/odata")
    def odata():
        return reply(res.odata_document([
            ("Service", ROOT + "/"), ("Systems", ROOT + "/Systems"), ("Chassis", ROOT + "/Chassis"),
            ("Managers", ROOT + "/Managers"), ("SessionService", ROOT + "/SessionService"),
            ("AccountService", ROOT + "/AccountService"), ("EventService", ROOT + "/EventService"),
            ("TaskService", ROOT + "/TaskService"), ("Sessions", ROOT + "/SessionService/Sessions")]))

    @app.get(ROOT + "/$metadata")
    def metadata():
        return Response(res.metadata_xml(), content_type="application/xml", headers={"OData-Version": "4.0"})


def register(app, service):
    from ansible_collections.picluster.carrier.plugins.module_utils._redfish import routes_services

    register_root(app, service)
    register_systems(app, service)
    register_chassis(app, service)
    routes_services.register(app, service, ROLES)
