# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TaskService: an operation that takes longer than ``threshold`` seconds goes on on a thread and
the client gets ``202 Accepted`` with a task monitor to poll (DSP0266, "Asynchronous operations").

Tasks live in memory only (a restarted service has none); the finished ones are kept for an hour.
"""

from __future__ import annotations

import secrets
import threading
import time

KEEP = 3600.0


def _stamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Task(object):
    def __init__(self, name):
        self.id = secrets.token_hex(6)
        self.name = name
        self.state = "Running"
        self.status = "OK"
        self.start = time.time()
        self.end = None
        self.result = None  # (status code, body) once done
        self.done = threading.Event()


class Tasks(object):
    def __init__(self, threshold=2.0):
        self.threshold = threshold
        self.tasks = {}
        self._lock = threading.Lock()

    def run(self, name, action):
        """Run ``action()`` (returning ``(status, body)``); its result when done within the threshold, else the Task."""
        task = Task(name)

        def work():
            try:
                task.result = action()
            except Exception as exc:  # the task reports it; a thread must not die silently
                task.result = exc
            failed = isinstance(task.result, Exception) or task.result[0] >= 400
            task.state, task.status = ("Exception", "Critical") if failed else ("Completed", "OK")
            task.end = time.time()
            task.done.set()

        with self._lock:
            now = time.time()
            for key in [k for k, t in self.tasks.items() if t.end is not None and now - t.end > KEEP]:
                del self.tasks[key]
            self.tasks[task.id] = task
        threading.Thread(target=work, daemon=True).start()
        if task.done.wait(self.threshold):
            with self._lock:
                self.tasks.pop(task.id, None)
            if isinstance(task.result, Exception):
                raise task.result
            return task.result, None
        return None, task

    def get(self, task_id):
        with self._lock:
            return self.tasks.get(task_id)

    def resource(self, task):
        body = {
            "@odata.id": "/redfish/v1/TaskService/Tasks/%s" % task.id,
            "@odata.type": "#Task.v1_4_3.Task",
            "Id": task.id,
            "Name": task.name,
            "TaskState": task.state,
            "TaskStatus": task.status,
            "StartTime": _stamp(task.start),
            "TaskMonitor": "/redfish/v1/TaskService/TaskMonitors/%s" % task.id,
            "Messages": [],
        }
        if task.end is not None:
            body["EndTime"] = _stamp(task.end)
            body["PercentComplete"] = 100
        return body
