# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""EventService: subscriptions (EventDestination) kept in ``state_dir``, and power events POSTed to them.

A delivery runs on its own thread with a short timeout, so a subscriber that is down never holds up
the reset that caused the event; a failed delivery is logged and dropped (no retry queue).
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from ansible_collections.picluster.carrier.plugins.module_utils._redfish.errors import RedfishError

SUBSCRIPTIONS = "subscriptions"
EVENT_TYPES = ("ResourceAdded", "ResourceRemoved", "ResourceUpdated", "StatusChange", "Alert")
REGISTRY = "ResourceEvent.1.3.0"
MAX_SUBSCRIPTIONS = 64
KEYS = {"Destination", "Protocol", "Context", "EventTypes", "RegistryPrefixes", "ResourceTypes",
        "SubscriptionType", "HttpHeaders", "DeliveryRetryPolicy"}


class Events(object):
    def __init__(self, store, timeout=5.0, clock=time.time):
        self.store = store
        self.timeout = timeout
        self.clock = clock
        self.delivered = []  # (subscription id, status) of the last deliveries, for tests and the log

    def subscribe(self, body):
        """The id of a new subscription from a POST body; a RedfishError names the property at fault."""
        for key in body:
            if key not in KEYS:
                raise RedfishError("PropertyUnknown", key)
        destination = body.get("Destination")
        if not isinstance(destination, str):
            raise RedfishError("PropertyMissing", "Destination")
        parts = urlsplit(destination)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RedfishError("PropertyValueFormatError", destination, "Destination")
        if body.get("Protocol", "Redfish") != "Redfish":
            raise RedfishError("PropertyValueNotInList", body.get("Protocol"), "Protocol")
        if body.get("SubscriptionType", "RedfishEvent") != "RedfishEvent":
            raise RedfishError("PropertyValueNotInList", body.get("SubscriptionType"), "SubscriptionType")
        types = body.get("EventTypes", ["StatusChange"])
        if not isinstance(types, list) or any(t not in EVENT_TYPES for t in types):
            raise RedfishError("PropertyValueNotInList", types, "EventTypes")
        context = body.get("Context", "")
        if not isinstance(context, str):
            raise RedfishError("PropertyValueTypeError", context, "Context")
        headers = body.get("HttpHeaders") or []
        if not isinstance(headers, list) or not all(isinstance(h, dict) for h in headers):
            raise RedfishError("PropertyValueTypeError", "HttpHeaders", "HttpHeaders")
        subscription_id = secrets.token_hex(6)
        with self.store.changing(SUBSCRIPTIONS) as subs:
            if len(subs) >= MAX_SUBSCRIPTIONS:
                raise RedfishError("GeneralError", status=409, detail="at most %d subscriptions" % MAX_SUBSCRIPTIONS)
            subs[subscription_id] = {"Destination": destination, "Context": context, "EventTypes": types,
                                     "HttpHeaders": headers}
        return subscription_id

    def list(self):
        return self.store.read(SUBSCRIPTIONS)

    def delete(self, subscription_id):
        with self.store.changing(SUBSCRIPTIONS) as subs:
            return subs.pop(subscription_id, None) is not None

    def event(self, origin, message_id, args, event_type="StatusChange"):
        """The Event document for one change of ``origin`` (an @odata.id)."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        text = {"ResourcePoweredOn": "The resource `%s` has powered on.",
                "ResourcePoweredOff": "The resource `%s` has powered off."}[message_id] % args[0]
        return {
            "@odata.type": "#Event.v1_7_0.Event",
            "Id": secrets.token_hex(6),
            "Name": "carrier-redfish event",
            "Events": [{"EventType": event_type, "EventId": secrets.token_hex(6), "EventTimestamp": stamp,
                        "Severity": "OK", "MessageSeverity": "OK", "Message": text,
                        "MessageId": "%s.%s" % (REGISTRY, message_id), "MessageArgs": list(args),
                        "OriginOfCondition": {"@odata.id": origin}}],
        }

    def publish(self, origin, message_id, args, event_type="StatusChange", wait=False):
        """POST the event to every subscriber of ``event_type``; ``wait``: join the deliveries (tests)."""
        threads = []
        for subscription_id, sub in self.list().items():
            if event_type not in sub.get("EventTypes", EVENT_TYPES):
                continue
            document = self.event(origin, message_id, args, event_type)
            document["Context"] = sub.get("Context", "")
            thread = threading.Thread(target=self._deliver, args=(subscription_id, sub, document), daemon=True)
            thread.start()
            threads.append(thread)
        if wait:
            for thread in threads:
                thread.join()

    def _deliver(self, subscription_id, sub, document):
        headers = {"Content-Type": "application/json"}
        for entry in sub.get("HttpHeaders") or []:
            headers.update({str(k): str(v) for k, v in entry.items()})
        request = urllib.request.Request(sub["Destination"], data=json.dumps(document).encode(), headers=headers,
                                         method="POST")
        try:
            # An opener of its own: the service runs outside Ansible, and a subscriber URL is http(s) only.
            with urllib.request.build_opener().open(request, timeout=self.timeout) as response:
                status = response.status
        except OSError as exc:
            status = None
            sys.stderr.write("carrier-redfish: event to subscription %s not delivered: %s\n" % (subscription_id, exc))
        self.delivered.append((subscription_id, status))
        del self.delivered[:-100]
