# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Redfish resources as dicts (DSP0266; the versions named in the @odata.type are DMTF's DSP8010
schemas the DMTF Redfish Service Validator checks them against).

Functions only build documents from what they are given; the app reads the hardware and the state.
"""

from __future__ import annotations

import uuid

from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import PRIVILEGES, ROLES
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.nodes import BOOT_ENABLED, BOOT_ORDER

ROOT = "/redfish/v1"
REDFISH_VERSION = "1.15.0"
TYPES = {
    "ServiceRoot": "ServiceRoot.v1_11_0", "ComputerSystem": "ComputerSystem.v1_13_0", "Chassis": "Chassis.v1_14_0",
    "Manager": "Manager.v1_10_0", "SessionService": "SessionService.v1_1_8", "Session": "Session.v1_3_0",
    "AccountService": "AccountService.v1_7_0", "ManagerAccount": "ManagerAccount.v1_5_0", "Role": "Role.v1_2_4",
    "EventService": "EventService.v1_5_0", "EventDestination": "EventDestination.v1_9_0",
    "TaskService": "TaskService.v1_1_4", "Task": "Task.v1_4_3", "Thermal": "Thermal.v1_5_0", "Power": "Power.v1_5_0",
    "Message": "Message.v1_1_1", "Event": "Event.v1_7_0",
}
COLLECTIONS = {
    "ComputerSystemCollection": "Computer System Collection", "ChassisCollection": "Chassis Collection",
    "ManagerCollection": "Manager Collection", "SessionCollection": "Session Collection",
    "ManagerAccountCollection": "Accounts Collection", "RoleCollection": "Roles Collection",
    "EventDestinationCollection": "Event Subscriptions Collection", "TaskCollection": "Task Collection",
}
OK = {"State": "Enabled", "Health": "OK"}


def link(path):
    return {"@odata.id": path}


def resource(kind, path, ident, name, **fields):
    body = {"@odata.id": path, "@odata.type": "#%s.%s" % (TYPES[kind], kind), "Id": ident, "Name": name}
    body.update(fields)
    return body


def collection(kind, path, members):
    members = [link(m) for m in members]
    return {"@odata.id": path, "@odata.type": "#%s.%s" % (kind, kind), "Name": COLLECTIONS[kind],
            "Members@odata.count": len(members), "Members": members}


def service_uuid(manager):
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "carrier-redfish:%s" % manager))


def service_root(manager):
    return resource(
        "ServiceRoot", ROOT, "RootService", "carrier-redfish", RedfishVersion=REDFISH_VERSION,
        UUID=service_uuid(manager), Product="picluster.carrier carrier-redfish", Vendor="picluster.carrier",
        Systems=link(ROOT + "/Systems"), Chassis=link(ROOT + "/Chassis"), Managers=link(ROOT + "/Managers"),
        SessionService=link(ROOT + "/SessionService"), AccountService=link(ROOT + "/AccountService"),
        EventService=link(ROOT + "/EventService"), Tasks=link(ROOT + "/TaskService"),
        Links={"Sessions": link(ROOT + "/SessionService/Sessions")},
        ProtocolFeaturesSupported={"ExpandQuery": {"ExpandAll": False, "Levels": False, "Links": False,
                                                   "NoLinks": False},
                                   "FilterQuery": False, "SelectQuery": False, "OnlyMemberQuery": False,
                                   "ExcerptQuery": False})


def odata_document(paths):
    return {"@odata.context": ROOT + "/$metadata",
            "value": [{"name": name, "kind": "Singleton", "url": path} for name, path in paths]}


def metadata_xml():
    """The service's CSDL document: a reference to every DSP8010 schema the resources use."""
    names = sorted(set(TYPES) | set(COLLECTIONS) | {"Resource"})
    refs = []
    for name in names:
        includes = '<edmx:Include Namespace="%s"/>' % name
        if name in TYPES:
            includes += '<edmx:Include Namespace="%s"/>' % TYPES[name]
        refs.append('  <edmx:Reference Uri="http://redfish.dmtf.org/schemas/v1/%s_v1.xml">%s</edmx:Reference>'
                    % (name, includes))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0">\n'
            + "\n".join(refs) + '\n  <edmx:DataServices>\n'
            '    <Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Service">\n'
            '      <EntityContainer Name="Service" Extends="ServiceRoot.v1_11_0.ServiceContainer"/>\n'
            '    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n')


def system(node, power_state, override, targets, reset_types, manager, console_host):
    path = "%s/Systems/%s" % (ROOT, node.host)
    boot = {
        "BootSourceOverrideTarget": override["target"],
        "BootSourceOverrideTarget@Redfish.AllowableValues": list(targets),
        "BootSourceOverrideEnabled": override["enabled"],
        "BootSourceOverrideEnabled@Redfish.AllowableValues": list(BOOT_ENABLED),
        "BootSourceOverrideMode": "UEFI",
        "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI"],
    }
    body = resource(
        "ComputerSystem", path, node.host, node.host, SystemType="Physical", Manufacturer="Raspberry Pi Ltd",
        Model=node.model, HostName=node.host, PowerState=power_state, Status=dict(OK), Boot=boot,
        Description="Slot %d of board %s (boot order for the override target: %s)"
                    % (node.slot, node.board_spec["name"], BOOT_ORDER.get(override["target"]) or "unchanged"),
        Links={"Chassis": [link("%s/Chassis/%s" % (ROOT, node.board_spec["name"]))],
               "ManagedBy": [link("%s/Managers/%s" % (ROOT, manager))]},
        Actions={"#ComputerSystem.Reset": {"target": path + "/Actions/ComputerSystem.Reset",
                                           "ResetType@Redfish.AllowableValues": list(reset_types)}},
    )
    if node.console_port:
        body["SerialConsole"] = {"MaxConcurrentSessions": 1, "Telnet": {
            "ServiceEnabled": True, "Port": node.console_port, "SharedWithManagerCLI": False,
            "ConsoleEntryCommand": "telnet %s %d" % (console_host or "localhost", node.console_port)}}
    return body


def chassis(spec, manager, has_thermal, has_power):
    path = "%s/Chassis/%s" % (ROOT, spec["name"])
    body = resource(
        "Chassis", path, spec["name"], spec["name"], ChassisType="Enclosure", Status=dict(OK),
        Model=spec["board"].profile.name, Description="Carrier board %s (profile %s)"
                                                      % (spec["name"], spec["board"].profile.name),
        Links={"ComputerSystems": [link("%s/Systems/%s" % (ROOT, n["host"]))
                                   for _s, n in sorted(spec["nodes"].items())],
               "ManagedBy": [link("%s/Managers/%s" % (ROOT, manager))]},
    )
    if has_thermal:
        body["Thermal"] = link(path + "/Thermal")
    if has_power:
        body["Power"] = link(path + "/Power")
    return body


def _status(entry):
    if entry.get("ok"):
        return dict(OK)
    return {"State": "Absent" if entry.get("missing") else "UnavailableOffline", "Health": "Critical"}


def thermal(board_name, readings):
    path = "%s/Chassis/%s/Thermal" % (ROOT, board_name)
    temperatures = []
    for name, entry in sorted(readings["sensors"].items()):
        if entry.get("ok") and entry.get("temperature") is None:
            continue  # not a temperature sensor
        temperatures.append({"@odata.id": "%s#/Temperatures/%d" % (path, len(temperatures)),
                             "MemberId": str(len(temperatures)), "Name": name,
                             "ReadingCelsius": entry.get("temperature"), "Status": _status(entry)})
    fans = []
    for name, entry in sorted(readings["fans"].items()):
        fans.append({"@odata.id": "%s#/Fans/%d" % (path, len(fans)), "MemberId": str(len(fans)), "Name": name,
                     "Reading": int(round(entry["rpm"])) if entry.get("ok") else None, "ReadingUnits": "RPM",
                     "Status": _status(entry)})
    return resource("Thermal", path, "Thermal", "Thermal", Temperatures=temperatures, Fans=fans)


def power(board_name, readings):
    path = "%s/Chassis/%s/Power" % (ROOT, board_name)
    voltages, controls = [], []
    for slot, entry in sorted(readings["slots"].items()):
        ok = entry.get("ok")
        voltages.append({"@odata.id": "%s#/Voltages/%d" % (path, len(voltages)), "MemberId": str(len(voltages)),
                         "Name": "Slot %d supply" % slot, "ReadingVolts": entry.get("bus_voltage") if ok else None,
                         "Status": _status(entry)})
        controls.append({"@odata.id": "%s#/PowerControl/%d" % (path, len(controls)), "MemberId": str(len(controls)),
                         "Name": "Slot %d" % slot, "PowerConsumedWatts": entry.get("power") if ok else None,
                         "Status": _status(entry)})
    return resource("Power", path, "Power", "Power", Voltages=voltages, PowerControl=controls)


def manager(name, config, nodes):
    return resource(
        "Manager", "%s/Managers/%s" % (ROOT, name), name, "carrier-redfish on %s" % name, ManagerType="BMC",
        UUID=service_uuid(name), Status=dict(OK), Description="The controller of the carrier boards",
        Links={"ManagerForServers": [link("%s/Systems/%s" % (ROOT, host)) for host in sorted(nodes.systems)],
               "ManagerForChassis": [link("%s/Chassis/%s" % (ROOT, b)) for b in sorted(nodes.boards)]},
    )


def session_service(timeout):
    return resource("SessionService", ROOT + "/SessionService", "SessionService", "Session Service",
                    ServiceEnabled=True, SessionTimeout=timeout, Status=dict(OK),
                    Sessions=link(ROOT + "/SessionService/Sessions"))


def session(session_id, entry):
    return resource("Session", "%s/SessionService/Sessions/%s" % (ROOT, session_id), session_id, "User Session",
                    UserName=entry["user"])


def account_service():
    return resource("AccountService", ROOT + "/AccountService", "AccountService", "Account Service",
                    ServiceEnabled=True, LocalAccountAuth="Enabled", Status=dict(OK),
                    Accounts=link(ROOT + "/AccountService/Accounts"), Roles=link(ROOT + "/AccountService/Roles"))


def account(name, spec):
    return resource("ManagerAccount", "%s/AccountService/Accounts/%s" % (ROOT, name), name, "User Account",
                    UserName=name, RoleId=spec["role"], Enabled=True, Locked=False, AccountTypes=["Redfish"],
                    Links={"Role": link("%s/AccountService/Roles/%s" % (ROOT, spec["role"]))})


def role(name):
    return resource("Role", "%s/AccountService/Roles/%s" % (ROOT, name), name, "%s Role" % name, RoleId=name,
                    IsPredefined=True, AssignedPrivileges=list(PRIVILEGES[name]))


def roles():
    return collection("RoleCollection", ROOT + "/AccountService/Roles",
                      ["%s/AccountService/Roles/%s" % (ROOT, r) for r in ROLES])


def event_service():
    return resource("EventService", ROOT + "/EventService", "EventService", "Event Service", ServiceEnabled=True,
                    DeliveryRetryAttempts=1, DeliveryRetryIntervalSeconds=1, Status=dict(OK),
                    Subscriptions=link(ROOT + "/EventService/Subscriptions"))


def subscription(sub_id, sub):
    return resource("EventDestination", "%s/EventService/Subscriptions/%s" % (ROOT, sub_id), sub_id,
                    "Event Subscription", Destination=sub["Destination"], Context=sub.get("Context", ""),
                    Protocol="Redfish", EventTypes=list(sub.get("EventTypes", [])), SubscriptionType="RedfishEvent")


def task_service():
    return resource("TaskService", ROOT + "/TaskService", "TaskService", "Task Service", ServiceEnabled=True,
                    CompletedTaskOverWritePolicy="Oldest", LifeCycleEventOnTaskStateChange=False, Status=dict(OK),
                    Tasks=link(ROOT + "/TaskService/Tasks"))
