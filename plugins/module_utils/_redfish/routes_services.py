# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The URLs of the services: SessionService, AccountService (read-only), EventService, TaskService."""

from __future__ import annotations

from ansible_collections.picluster.carrier.plugins.module_utils._redfish import resources as res
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.app import json_body, reply
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.errors import RedfishError

ROOT = res.ROOT


def missing(path):
    return RedfishError("ResourceMissingAtURI", path)


def register_sessions(app, service):
    from flask import request

    @app.get(ROOT + "/SessionService")
    def session_service():
        return reply(res.session_service(service.config["session_timeout"]))

    @app.route(ROOT + "/SessionService/Sessions", methods=["GET", "POST"])
    def sessions():
        if request.method == "GET":
            return reply(res.collection("SessionCollection", request.path.rstrip("/"),
                                        ["%s/SessionService/Sessions/%s" % (ROOT, k)
                                         for k in sorted(service.sessions.list())]))
        body = json_body(request)
        for key in ("UserName", "Password"):
            if not isinstance(body.get(key), str):
                raise RedfishError("PropertyMissing", key) if key not in body else RedfishError(
                    "PropertyValueTypeError", "(hidden)" if key == "Password" else body[key], key)
        role = service.login(body["UserName"], body["Password"])
        if role is None:
            raise RedfishError("NoValidSession", status=401, detail="wrong user name or password")
        session_id, token = service.sessions.create(body["UserName"], role)
        location = "%s/SessionService/Sessions/%s" % (ROOT, session_id)
        return reply(res.session(session_id, service.sessions.get(session_id)), 201,
                     headers={"X-Auth-Token": token, "Location": location})

    @app.route(ROOT + "/SessionService/Sessions/<session_id>", methods=["GET", "DELETE"])
    def session(session_id):
        entry = service.sessions.get(session_id)
        if entry is None:
            raise missing(request.path)
        if request.method == "DELETE":
            service.sessions.delete(session_id)
            return reply(None, 204)
        return reply(res.session(session_id, entry))


def register_accounts(app, service, roles):
    from flask import request

    @app.get(ROOT + "/AccountService")
    def account_service():
        return reply(res.account_service())

    @app.get(ROOT + "/AccountService/Accounts")
    def accounts():
        return reply(res.collection("ManagerAccountCollection", ROOT + "/AccountService/Accounts",
                                    ["%s/AccountService/Accounts/%s" % (ROOT, n) for n in sorted(service.accounts())]))

    @app.get(ROOT + "/AccountService/Accounts/<name>")
    def account(name):
        spec = service.accounts().get(name)
        if spec is None:
            raise missing(request.path)
        return reply(res.account(name, spec))

    @app.get(ROOT + "/AccountService/Roles")
    def role_list():
        return reply(res.roles())

    @app.get(ROOT + "/AccountService/Roles/<name>")
    def role(name):
        if name not in roles:
            raise missing(request.path)
        return reply(res.role(name))


def register_events(app, service):
    from flask import request

    @app.get(ROOT + "/EventService")
    def event_service():
        return reply(res.event_service())

    @app.route(ROOT + "/EventService/Subscriptions", methods=["GET", "POST"])
    def subscriptions():
        if request.method == "GET":
            return reply(res.collection("EventDestinationCollection", ROOT + "/EventService/Subscriptions",
                                        ["%s/EventService/Subscriptions/%s" % (ROOT, k)
                                         for k in sorted(service.events.list())]))
        sub_id = service.events.subscribe(json_body(request))
        location = "%s/EventService/Subscriptions/%s" % (ROOT, sub_id)
        return reply(res.subscription(sub_id, service.events.list()[sub_id]), 201, headers={"Location": location})

    @app.route(ROOT + "/EventService/Subscriptions/<sub_id>", methods=["GET", "DELETE"])
    def subscription(sub_id):
        sub = service.events.list().get(sub_id)
        if sub is None:
            raise missing(request.path)
        if request.method == "DELETE":
            service.events.delete(sub_id)
            return reply(None, 204)
        return reply(res.subscription(sub_id, sub))


def register_tasks(app, service):
    from flask import request

    @app.get(ROOT + "/TaskService")
    def task_service():
        return reply(res.task_service())

    @app.get(ROOT + "/TaskService/Tasks")
    def tasks():
        return reply(res.collection("TaskCollection", ROOT + "/TaskService/Tasks",
                                    ["%s/TaskService/Tasks/%s" % (ROOT, k) for k in sorted(service.tasks.tasks)]))

    @app.get(ROOT + "/TaskService/Tasks/<task_id>")
    def task(task_id):
        found = service.tasks.get(task_id)
        if found is None:
            raise missing(request.path)
        return reply(service.tasks.resource(found))

    @app.get(ROOT + "/TaskService/TaskMonitors/<task_id>")
    def monitor(task_id):
        found = service.tasks.get(task_id)
        if found is None:
            raise missing(request.path)
        if not found.done.is_set():
            return reply(service.tasks.resource(found), 202, headers={"Retry-After": "1"})
        if isinstance(found.result, Exception):
            return reply(RedfishError("InternalError").body(), 500)
        return reply(found.result[1], found.result[0])


def register(app, service, roles):
    register_sessions(app, service)
    register_accounts(app, service, roles)
    register_events(app, service)
    register_tasks(app, service)
