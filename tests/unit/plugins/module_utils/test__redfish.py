# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_redfish: the Redfish service's Flask app over emulated boards (the simulator's chip models):
resources, resets through the board library, the boot override with ETags, authentication and
roles, sessions, subscriptions and the Redfish error responses (nothing switched on any error)."""

from __future__ import annotations

import base64
import json

import pytest

pytest.importorskip("flask")

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._redfish import accounts, app as rf_app  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.config import load_config  # noqa: E402

PASSWORDS = {"admin": ("adminpw", "Administrator"), "op": ("oppw", "Operator"), "viewer": ("viewpw", "ReadOnly")}


def basic(user):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, PASSWORDS[user][0])).encode()).decode()}


def write_accounts(path):
    data = {"version": 1, "accounts": {u: {"password_hash": accounts.hash_password(p, iterations=1000), "role": r}
                                       for u, (p, r) in PASSWORDS.items()}}
    path.write_text(json.dumps(data))
    path.chmod(0o600)


def service_config(tmp_path, **extra):
    write_accounts(tmp_path / "accounts.json")
    data = {"accounts_file": str(tmp_path / "accounts.json"), "state_dir": str(tmp_path / "state"),
            "lock_dir": str(tmp_path), "console_host": "ctrl0.lan",
            "boards": [{"name": "b1", "profile": "itx4_hwmon", "bus": "sim:/nonexistent/inproc.sock",
                        "nodes": {"1": {"host": "node01", "model": "cm4", "console_port": 2001},
                                  "2": {"host": "node02", "model": "cm5"}}}]}
    data.update(extra)
    return data


@pytest.fixture
def rf(rig, tmp_path):
    r = rig("itx4_hwmon", nodes=(1, 2, 3, 4))
    config = load_config(service_config(tmp_path), bus_opener=r.board._bus_opener)
    application = rf_app.create_app(config, bus_opener=r.board._bus_opener, sleep=lambda s: None)
    client = application.test_client()
    client.rig = r
    client.service = application.config["SERVICE"]
    return client


def power(client, host="node01"):
    return client.get("/redfish/v1/Systems/%s" % host, headers=basic("admin")).get_json()["PowerState"]


def reset(client, reset_type, user="admin", host="node01"):
    return client.post("/redfish/v1/Systems/%s/Actions/ComputerSystem.Reset" % host, json={"ResetType": reset_type},
                       headers=basic(user))


def assert_error(response, status, message_id):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"].endswith("." + message_id), body
    assert body["error"]["@Message.ExtendedInfo"][0]["MessageId"].endswith("." + message_id)
    return body


def test_service_root_is_public_and_the_rest_needs_credentials(rf):
    for path in ("/redfish", "/redfish/v1", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata"):
        assert rf.get(path).status_code == 200, path
    root = rf.get("/redfish/v1/").get_json()
    assert root["@odata.type"].startswith("#ServiceRoot.v1_")
    assert root["Systems"] == {"@odata.id": "/redfish/v1/Systems"}
    for path in ("/redfish/v1/Systems", "/redfish/v1/Systems/node01", "/redfish/v1/Chassis/b1",
                 "/redfish/v1/AccountService/Accounts", "/redfish/v1/SessionService/Sessions"):
        response = rf.get(path)
        assert_error(response, 401, "NoValidSession")
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}
    assert_error(rf.get("/redfish/v1/Systems", headers=wrong), 401, "NoValidSession")
    assert_error(rf.get("/redfish/v1/Systems", headers={"X-Auth-Token": "made-up"}), 401, "NoValidSession")
    assert rf.get("/redfish/v1/Systems", headers=basic("viewer")).status_code == 200


def test_no_route_but_the_public_ones_answers_without_credentials(rf):
    """Every URL rule of the app, with every method it takes: 401 without credentials, switching nothing."""
    public = {"/redfish", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata"}
    values = {"host": "node01", "name": "b1", "session_id": "x", "sub_id": "x", "task_id": "x"}
    checked = 0
    for rule in rf.application.url_map.iter_rules():
        if rule.rule in public:
            continue
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace("<%s>" % arg, values.get(arg, "x"))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "POST" and path == "/redfish/v1/SessionService/Sessions":
                continue  # the login itself
            response = rf.open(path, method=method, json={"ResetType": "On"})
            assert response.status_code == 401, (method, path, response.status_code)
            checked += 1
    assert checked >= 25 and not rf.rig.levels(1)["power"]


def test_systems_and_system_resource(rf):
    systems = rf.get("/redfish/v1/Systems", headers=basic("admin")).get_json()
    assert [m["@odata.id"] for m in systems["Members"]] == ["/redfish/v1/Systems/node01", "/redfish/v1/Systems/node02"]
    response = rf.get("/redfish/v1/Systems/node01", headers=basic("admin"))
    body = response.get_json()
    assert response.headers["OData-Version"] == "4.0" and response.headers["ETag"]
    assert body["Id"] == "node01" and body["PowerState"] == "Off"
    assert body["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"] == [
        "On", "ForceOff", "ForceRestart", "PowerCycle", "GracefulShutdown"]
    assert body["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"] == [
        "None", "Pxe", "Hdd", "SDCard", "Usb", "UefiHttp"]
    assert body["SerialConsole"]["Telnet"]["Port"] == 2001
    assert "ctrl0.lan 2001" in body["SerialConsole"]["Telnet"]["ConsoleEntryCommand"]
    assert body["Links"]["Chassis"] == [{"@odata.id": "/redfish/v1/Chassis/b1"}]
    assert "SerialConsole" not in rf.get("/redfish/v1/Systems/node02", headers=basic("admin")).get_json()


def test_resets_switch_the_lines_through_the_library(rf):
    assert reset(rf, "On").status_code == 204
    assert rf.rig.levels(1)["power"] and power(rf) == "On"
    assert reset(rf, "ForceRestart").status_code == 204
    assert power(rf) == "On"
    assert reset(rf, "PowerCycle").status_code == 204
    assert reset(rf, "ForceOff").status_code == 204
    assert power(rf) == "Off" and power(rf, "node02") == "Off"


@pytest.mark.parametrize("body, status, message_id", [
    ({"ResetType": "Nmi"}, 400, "ActionParameterValueNotInList"),
    ({"ResetType": "Explode"}, 400, "ActionParameterValueNotInList"),
    ({}, 400, "ActionParameterMissing"),
    ({"ResetType": "On", "Delay": 3}, 400, "ActionParameterNotSupported"),
])
def test_refused_resets_switch_nothing(rf, body, status, message_id):
    writes = len(rf.rig.writes())
    response = rf.post("/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", json=body, headers=basic("admin"))
    assert_error(response, status, message_id)
    assert len(rf.rig.writes()) == writes and power(rf) == "Off"


def test_graceful_shutdown_over_the_console_or_a_clear_refusal(rf):
    typed = []
    rf.service.nodes.poweroff = lambda url, host: typed.append((url, host))
    assert reset(rf, "GracefulShutdown").status_code == 204  # off already: nothing to do
    assert typed == []
    assert reset(rf, "On").status_code == 204 and reset(rf, "On", host="node02").status_code == 204
    body = assert_error(reset(rf, "GracefulShutdown", host="node02"), 409, "ActionParameterValueConflict")
    assert "no console configured" in body["error"]["message"] and power(rf, "node02") == "On"

    def refuse(url, host):
        raise CarrierError("%s: its console (%s) is at a login prompt, not a logged-in shell: nothing was switched"
                           % (host, url))

    rf.service.nodes.poweroff = refuse
    writes = len(rf.rig.writes())
    body = assert_error(reset(rf, "GracefulShutdown"), 409, "ActionParameterValueConflict")
    assert "rfc2217://ctrl0.lan:2001" in body["error"]["message"] and "login prompt" in body["error"]["message"]
    assert len(rf.rig.writes()) == writes and power(rf) == "On"
    rf.service.nodes.poweroff = lambda url, host: typed.append((url, host))
    assert reset(rf, "GracefulShutdown").status_code == 204
    assert typed == [("rfc2217://ctrl0.lan:2001?ign_set_control", "node01")] and power(rf) == "Off"


def test_malformed_json_and_unknown_urls(rf):
    response = rf.post("/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", data="{not json",
                       headers=dict(basic("admin"), **{"Content-Type": "application/json"}))
    assert_error(response, 400, "MalformedJSON")
    assert power(rf) == "Off"
    assert_error(rf.get("/redfish/v1/Systems/node99", headers=basic("admin")), 404, "ResourceMissingAtURI")
    assert_error(rf.get("/redfish/v1/Nothing", headers=basic("admin")), 404, "ResourceMissingAtURI")
    response = rf.delete("/redfish/v1/Systems/node01", headers=basic("admin"))
    assert_error(response, 405, "OperationNotAllowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PATCH"}


def test_readonly_role_cannot_change_anything(rf):
    assert_error(reset(rf, "On", user="viewer"), 403, "InsufficientPrivilege")
    response = rf.patch("/redfish/v1/Systems/node01", json={"Boot": {"BootSourceOverrideTarget": "Pxe"}},
                        headers=basic("viewer"))
    assert_error(response, 403, "InsufficientPrivilege")
    assert power(rf) == "Off" and rf.service.nodes.boot_override(rf.service.nodes.systems["node01"])["target"] == "None"
    assert reset(rf, "On", user="op").status_code == 204


def test_boot_override_patch_with_etag(rf):
    first = rf.get("/redfish/v1/Systems/node01", headers=basic("admin"))
    etag = first.headers["ETag"]
    response = rf.patch("/redfish/v1/Systems/node01", headers=dict(basic("admin"), **{"If-Match": etag}),
                        json={"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Continuous"}})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    assert response.headers["ETag"] != etag
    stale = rf.patch("/redfish/v1/Systems/node01", headers=dict(basic("admin"), **{"If-Match": etag}),
                     json={"Boot": {"BootSourceOverrideTarget": "Hdd"}})
    assert_error(stale, 412, "PreconditionFailed")
    assert rf.get("/redfish/v1/Systems/node01", headers=basic("admin")).get_json()["Boot"][
        "BootSourceOverrideTarget"] == "Pxe"
    bad = rf.patch("/redfish/v1/Systems/node01", headers=basic("admin"),
                   json={"Boot": {"BootSourceOverrideTarget": "Floppy"}})
    assert_error(bad, 400, "PropertyValueNotInList")
    assert_error(rf.patch("/redfish/v1/Systems/node01", headers=basic("admin"), json={"PowerState": "On"}),
                 400, "PropertyNotWritable")
    assert_error(rf.patch("/redfish/v1/Systems/node01", headers=basic("admin"), json={"Colour": 1}),
                 400, "PropertyUnknown")
    with open(rf.service.store._path("boot-overrides")) as handle:
        assert json.load(handle)["node01"]["target"] == "Pxe"


def test_usb_override_once_sets_rpiboot_at_the_next_power_on(rf):
    response = rf.patch("/redfish/v1/Systems/node01", headers=basic("admin"),
                        json={"Boot": {"BootSourceOverrideTarget": "Usb", "BootSourceOverrideEnabled": "Once"}})
    assert response.status_code == 200
    assert not rf.rig.levels(1)["power"]
    assert reset(rf, "On").status_code == 204
    assert rf.rig.levels(1)["power"] and rf.rig.levels(1)["rpiboot"]
    boot = rf.get("/redfish/v1/Systems/node01", headers=basic("admin")).get_json()["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"]) == ("None", "Disabled")
    # a later Pxe override takes the node out of USB-boot mode at its next start
    rf.patch("/redfish/v1/Systems/node01", headers=basic("admin"), json={"Boot": {"BootSourceOverrideTarget": "Pxe"}})
    assert reset(rf, "PowerCycle").status_code == 204
    assert rf.rig.levels(1)["power"] and not rf.rig.levels(1)["rpiboot"]


def test_sessions_login_use_logout_and_timeout(rf):
    response = rf.post("/redfish/v1/SessionService/Sessions", json={"UserName": "op", "Password": "oppw"})
    assert response.status_code == 201
    token, location = response.headers["X-Auth-Token"], response.headers["Location"]
    assert rf.get("/redfish/v1/Systems", headers={"X-Auth-Token": token}).status_code == 200
    stored = open(rf.service.store._path("sessions")).read()
    assert token not in stored
    import os
    assert os.stat(rf.service.store._path("sessions")).st_mode & 0o777 == 0o600
    assert_error(rf.post("/redfish/v1/SessionService/Sessions", json={"UserName": "op", "Password": "x"}), 401,
                 "NoValidSession")
    assert rf.delete(location, headers={"X-Auth-Token": token}).status_code == 204
    assert_error(rf.get("/redfish/v1/Systems", headers={"X-Auth-Token": token}), 401, "NoValidSession")
    response = rf.post("/redfish/v1/SessionService/Sessions", json={"UserName": "viewer", "Password": "viewpw"})
    token = response.headers["X-Auth-Token"]
    clock = rf.service.sessions
    real = clock.clock
    clock.clock = lambda: real() + rf.service.config["session_timeout"] + 1
    try:
        assert_error(rf.get("/redfish/v1/Systems", headers={"X-Auth-Token": token}), 401, "NoValidSession")
    finally:
        clock.clock = real


def test_chassis_thermal_power_manager_accounts(rf):
    chassis = rf.get("/redfish/v1/Chassis/b1", headers=basic("admin")).get_json()
    assert chassis["Links"]["ComputerSystems"][0] == {"@odata.id": "/redfish/v1/Systems/node01"}
    thermal = rf.get(chassis["Thermal"]["@odata.id"], headers=basic("admin")).get_json()
    assert thermal["Temperatures"] and all("ReadingCelsius" in t for t in thermal["Temperatures"])
    power_doc = rf.get(chassis["Power"]["@odata.id"], headers=basic("admin")).get_json()
    assert len(power_doc["Voltages"]) == 4
    manager = rf.get("/redfish/v1/Managers/carrier", headers=basic("admin")).get_json()
    assert {"@odata.id": "/redfish/v1/Systems/node02"} in manager["Links"]["ManagerForServers"]
    listed = rf.get("/redfish/v1/AccountService/Accounts", headers=basic("viewer")).get_json()
    assert listed["Members@odata.count"] == 3
    admin = rf.get("/redfish/v1/AccountService/Accounts/admin", headers=basic("viewer")).get_json()
    assert admin["RoleId"] == "Administrator" and "password_hash" not in json.dumps(admin)


def test_event_subscriptions_and_power_events(rf, tmp_path):
    import http.server
    import threading

    received = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = "http://127.0.0.1:%d/events" % server.server_port
        response = rf.post("/redfish/v1/EventService/Subscriptions", headers=basic("admin"),
                           json={"Destination": url, "Context": "ironic", "Protocol": "Redfish"})
        assert response.status_code == 201
        location = response.headers["Location"]
        assert rf.get(location, headers=basic("admin")).get_json()["Destination"] == url
        assert_error(rf.post("/redfish/v1/EventService/Subscriptions", headers=basic("admin"),
                             json={"Destination": "ftp://x"}), 400, "PropertyValueFormatError")
        assert reset(rf, "On").status_code == 204
        for _attempt in range(200):
            if received:
                break
            threading.Event().wait(0.01)
        assert received[0]["Context"] == "ironic"
        assert received[0]["Events"][0]["MessageId"].endswith("ResourcePoweredOn")
        assert rf.delete(location, headers=basic("admin")).status_code == 204
        assert_error(rf.get(location, headers=basic("admin")), 404, "ResourceMissingAtURI")
    finally:
        server.shutdown()


def test_slow_reset_returns_a_task(rig, tmp_path):
    import threading

    r = rig("itx4_hwmon", nodes=(1, 2, 3, 4))
    gate = threading.Event()
    config = load_config(service_config(tmp_path), bus_opener=r.board._bus_opener)
    application = rf_app.create_app(config, bus_opener=r.board._bus_opener, sleep=lambda s: gate.wait(5),
                                    task_threshold=0.05)
    client = application.test_client()
    assert reset(client, "On").status_code == 204  # nothing to wait for
    response = client.post("/redfish/v1/Systems/node01/Actions/ComputerSystem.Reset", json={"ResetType": "PowerCycle"},
                           headers=basic("admin"))
    assert response.status_code == 202
    monitor = response.headers["Location"]
    assert client.get(monitor, headers=basic("admin")).status_code == 202
    gate.set()
    for _attempt in range(200):
        done = client.get(monitor, headers=basic("admin"))
        if done.status_code != 202:
            break
        threading.Event().wait(0.01)
    assert done.status_code == 204
    task = client.get("/redfish/v1/TaskService/Tasks/" + monitor.rsplit("/", 1)[1], headers=basic("admin")).get_json()
    assert task["TaskState"] == "Completed"


@pytest.mark.parametrize("change, message", [
    ({"state_dir": None}, r"^state_dir: a path is required"),
    ({"port": 70000}, r"^port: "),
    ({"tls_cert": "/x"}, r"^tls_cert, tls_key: give both"),
    ({"colour": 1}, r"^config: unknown key\(s\) colour"),
    ({"console_host": "ctrl 0"}, r"^console_host: 'ctrl 0' is not a valid host name or IP address"),
    ({"listen": 8443}, r"^listen: 8443 is not a host name or IP address"),
    ({"boards": [{"name": "b1", "profile": "itx4", "bus": 1, "nodes": {"9": "n9"}}]}, r"^boards.0.nodes.9: slot: 9"),
    ({"boards": [{"name": "b1", "profile": "itx4", "bus": 1, "nodes": {"1": {"host": "a/b"}}}]},
     r"boards.0.nodes.1.host"),
    ({"boards": [{"name": "b1", "profile": "itx4", "bus": 1, "nodes": {"1": "n1", "2": "n1"}}]}, r"given twice"),
])
def test_config_refusals_name_the_key(tmp_path, change, message):
    data = service_config(tmp_path)
    data.update(change)
    with pytest.raises(CarrierError, match=message):
        load_config(data)


def test_addresses_accepted(tmp_path):
    config = load_config(service_config(tmp_path, listen="::1", console_host="fd00::1"))
    assert (config["listen"], config["console_host"]) == ("::1", "fd00::1")


def test_main_check(tmp_path, capsys):
    path = tmp_path / "redfish.json"
    path.write_text(json.dumps(service_config(tmp_path)))
    assert rf_app.main(["--config", str(path), "--check"]) == 0
    assert "1 board(s), 2 system(s) OK" in capsys.readouterr().out
    path.write_text(json.dumps(service_config(tmp_path, port="x")))
    with pytest.raises(SystemExit) as info:
        rf_app.main(["--config", str(path), "--check"])
    assert info.value.code == 1 and "port:" in capsys.readouterr().err
