#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: console
short_description: Capture, wait for, and talk to a node's serial console
version_added: 0.1.0
description:
  - Opens a node's serial console, a local device (V(/dev/ttyUSB0)) or a terminal server port reached with a
    pyserial URL (V(rfc2217://controller:7001?ign_set_control) for ser2net, as the
    C(picluster.carrier.terminal_server) role sets up), and does one operation per task.
  - O(capture) reads for a duration or until a regular expression matches, and returns the lines.
  - O(wait_for) waits until the node reaches a state, recognised from what it prints (the Raspberry Pi EEPROM
    bootloader's lines, the kernel's, the C(Debian GNU/Linux 12 <host> ttyS0) issue line and
    C(<host> login:) prompt, a shell prompt).
  - O(expect) runs expect/send steps, like M(ansible.builtin.expect) but on a console.
  - O(command) logs in if the node shows a login prompt (O(login_user), O(login_password)) and runs one shell
    command; its output is framed by unique markers, so neither the prompt nor the echo of the typed line
    reaches RV(stdout), and the exit status comes back as RV(rc).
  - A port another client holds (ser2net lets one client in at a time and turns the next away with
    C(Port already in use); a local device open with exclusive access or under a UUCP lock) fails at once with
    a message saying the port is busy. Every timeout's message carries the last lines seen, also returned as
    RV(lines).
  - Runs where the console is reachable, so delegate to the node's controller (host var C(carrier_controller)).
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - picluster.carrier.board.bmc
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details:
      - O(capture) and O(wait_for) only read (O(wait_for) may send an empty line, see O(poke)) and run in check
        mode. O(expect) and O(command) type on the console, so in check mode they are skipped, with
        C(changed=false).
  diff_mode:
    support: none
requirements:
  - pyserial >= 3.4 on the host that runs the task
options:
  port:
    description:
      - The console's device path or pyserial URL (V(rfc2217://host:port?ign_set_control), V(socket://host:port),
        V(loop://)).
      - For a node of a Turing Pi 2, V(turingpi2:<BMC URL>#<node>) (for example V(turingpi2:https://turingpi.local#2))
        reaches the console through the BMC's buffered UART (see the notes for what it cannot do). The inventory
        plugin sets it as C(carrier_console) for such nodes.
      - Modules cannot read host variables, so pass the node's C(carrier_console) host var, as in
        C(port={{ carrier_console }}) (the inventory plugin or the C(picluster.carrier.terminal_server)
        role's C(carrier_console_urls) fact provide it).
    type: str
    required: true
  baudrate:
    description: The line speed (ignored by URLs whose server sets it).
    type: int
    default: 115200
  timeout:
    description:
      - Seconds O(wait_for) waits for the state, and O(command) waits for the login and then for the command
        to finish.
    type: float
    default: 120
  capture:
    description: Read the console and return what it printed. Give O(capture.duration), O(capture.until) or both.
    type: dict
    suboptions:
      duration:
        description:
          - Read for this many seconds. With O(capture.until), the time limit for the match (default 60).
        type: float
      until:
        description:
          - Read until this regular expression (Python syntax, multiline) matches; the task fails with the last
            lines seen if it does not match within the time limit.
        type: str
  expect:
    description:
      - Steps run in order, each waiting for O(expect[].match) then sending O(expect[].send). Every step is
        checked before anything is sent.
    type: list
    elements: dict
    suboptions:
      match:
        description: A regular expression to wait for (Python syntax, multiline). Without it the step only sends.
        type: str
      send:
        description:
          - Text to send once the step matched, followed by Enter (O(newline)) unless O(expect[].newline=false).
          - Set C(no_log) on the task when this is a secret.
        type: str
      timeout:
        description: Seconds to wait for O(expect[].match).
        type: float
        default: 30
      newline:
        description: Send Enter after O(expect[].send).
        type: bool
        default: true
  wait_for:
    description:
      - Wait until the node is in this state or a later one, in boot order V(bootloader) < V(kernel) < V(login)
        < V(shell). V(login) and V(shell) need the prompt itself on the line.
    type: str
    choices: [bootloader, kernel, login, shell]
  poke:
    description:
      - With O(wait_for) and O(command), send an empty line (Enter) each time the console has been silent for
        2 seconds, so a node already sitting at a prompt prints it again. An empty line changes nothing on the
        node. Set V(false) for a strictly read-only wait.
    type: bool
    default: true
  command:
    description:
      - One shell command line to run on the node (no line breaks). The task reports C(changed=true), like
        M(ansible.builtin.command).
    type: str
  login_user:
    description: The user to log in as with O(command) when the console shows a login prompt.
    type: str
  login_password:
    description: The password of O(login_user).
    type: str
  prompt:
    description: A regular expression matching the shell prompt at the end of the line.
    type: str
    default: '(?:^|\s)\S*[$#] ?$'
  newline:
    description: What Enter sends. V(cr) is what a terminal sends.
    type: str
    choices: [cr, lf, crlf]
    default: cr
  log_file:
    description:
      - Append everything read from the console during the task to this file (created with mode 0600).
    type: path
  log_header:
    description:
      - A line appended to O(log_file) as soon as the console is open, before anything read. It marks where
        this task's text starts, and tells a playbook waiting on the file that the console is being read
        (see C(playbooks/console.yml), which powers a node on once its capture has started).
    type: str
  lock_dir:
    description:
      - Where the BMC token is kept (0600) for the other tasks of the run, as for
        O(picluster.carrier.node_power#module:lock_dir).
    type: path
notes:
  - ser2net closes a console to the next client only when the current one disconnects; each task opens and
    closes the console, so tasks on one node take turns.
  - "A Turing Pi 2 console goes through the BMC's HTTP API, which allows less than a serial line: reading polls the
    BMC's buffer of the node's output (which the read empties, so two readers share the lines between them), and
    writing sends whole lines (the BMC types each one and Enter). It cannot send a character alone (no Ctrl-C),
    tell that another client is reading, or see what the node printed before the BMC buffered it."
seealso:
  - module: ansible.builtin.expect
"""

EXAMPLES = r"""
- name: Wait for the login prompt after power-on
  picluster.carrier.console:
    port: "{{ carrier_console }}"
    wait_for: login
    timeout: 180
  delegate_to: "{{ carrier_controller }}"

- name: Capture the boot log up to the login prompt, keeping a copy
  picluster.carrier.console:
    port: "{{ carrier_console }}"
    capture:
      until: 'login: ?$'
      duration: 180
    log_file: "/var/log/picluster/boot-{{ inventory_hostname }}.log"
  delegate_to: "{{ carrier_controller }}"
  register: boot

- name: Read the serial number over the console
  picluster.carrier.console:
    port: rfc2217://127.0.0.1:7001?ign_set_control
    command: grep Serial /proc/cpuinfo
    login_user: pi
    login_password: "{{ vault_console_password }}"
  register: serial

- name: Answer the U-Boot autoboot prompt
  picluster.carrier.console:
    port: /dev/ttyUSB0
    expect:
      - match: 'Hit any key to stop autoboot'
        send: ''
        timeout: 60
      - match: '=> $'
        send: 'printenv bootcmd'
"""

RETURN = r"""
port:
  description: The console opened.
  returned: always
  type: str
  sample: rfc2217://127.0.0.1:7001?ign_set_control
lines:
  description:
    - The lines read from the console during the task, without line ends, colour codes or
      control characters; the unfinished last line (a prompt) is included.
  returned: when the console was opened (also on failure)
  type: list
  elements: str
  sample: ["Debian GNU/Linux 12 node01 ttyS0", "", "node01 login: "]
state:
  description: The last state recognised on the console, or null when nothing was recognised.
  returned: when the console was opened (also on failure)
  type: str
  sample: login
match:
  description: The text O(capture.until) matched.
  returned: with O(capture)
  type: str
groups:
  description: The groups of the O(capture.until) match.
  returned: with O(capture)
  type: list
  elements: str
named_groups:
  description: The named groups of the O(capture.until) match.
  returned: with O(capture)
  type: dict
steps:
  description: One entry per O(expect) step.
  returned: with O(expect)
  type: list
  elements: dict
  contains:
    match:
      description: The text the step matched, null for a step without O(expect[].match).
      type: str
    groups:
      description: The groups of the match.
      type: list
      elements: str
    named_groups:
      description: The named groups of the match.
      type: dict
    sent:
      description: Whether the step sent its text.
      type: bool
logged_in:
  description: Whether the task logged in (false when the console was at a shell prompt already).
  returned: with O(command)
  type: bool
stdout:
  description: The command's output (stdout and stderr as the console shows them), one trailing newline removed.
  returned: with O(command)
  type: str
  sample: "Serial\t\t: 10000000b7f44626"
stdout_lines:
  description: RV(stdout) split into lines.
  returned: with O(command)
  type: list
  elements: str
rc:
  description: The command's exit status.
  returned: with O(command)
  type: int
  sample: 0
bytes_received:
  description: Bytes read from the console.
  returned: when the console was opened
  type: int
elapsed:
  description: Seconds the task spent on the console.
  returned: when the console was opened
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.picluster.carrier.plugins.module_utils._console import (
    DEFAULT_PROMPT,
    ConsoleError,
    ConsoleSession,
    check_command,
)
from ansible_collections.picluster.carrier.plugins.module_utils._bus import lock_directory
from ansible_collections.picluster.carrier.plugins.module_utils._common import BMC_ARGUMENT_SPEC, bmc_from_params
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, run_module
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import CONSOLE_PREFIX as BMC_CONSOLE_PREFIX
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number

OPERATIONS = ("capture", "expect", "wait_for", "command")


def argument_spec():
    return dict(
        port=dict(type="str", required=True),
        baudrate=dict(type="int", default=115200),
        timeout=dict(type="float", default=120),
        capture=dict(type="dict", options=dict(duration=dict(type="float"), until=dict(type="str"))),
        expect=dict(type="list", elements="dict", options=dict(
            match=dict(type="str"), send=dict(type="str"), timeout=dict(type="float", default=30),
            newline=dict(type="bool", default=True))),
        wait_for=dict(type="str", choices=["bootloader", "kernel", "login", "shell"]),
        poke=dict(type="bool", default=True),
        command=dict(type="str"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        prompt=dict(type="str", default=DEFAULT_PROMPT),
        newline=dict(type="str", choices=["cr", "lf", "crlf"], default="cr"),
        log_file=dict(type="path"),
        log_header=dict(type="str"),
        lock_dir=dict(type="path"),
        **BMC_ARGUMENT_SPEC,
    )


def operate(module, session):
    """Run the one operation of the task on an open session; the result dict."""
    params = module.params
    if params["capture"] is not None:
        capture = params["capture"]
        if capture["duration"] is None and capture["until"] is None:
            raise CarrierError("capture: give duration, until or both")
        if capture["until"] is not None:
            limit = capture["duration"] if capture["duration"] is not None else 60.0
            return session.capture(until=capture["until"], timeout=limit)
        return session.capture(duration=capture["duration"])
    if params["wait_for"] is not None:
        state = session.wait_for(params["wait_for"], params["timeout"], poke=params["poke"])
        return {"state": state}
    if params["expect"] is not None:
        return {"steps": session.run_steps(params["expect"]), "changed": True}
    deadline = time.monotonic() + params["timeout"]
    logged_in = False
    if params["login_user"]:
        logged_in = session.login(params["login_user"], params["login_password"], timeout=params["timeout"],
                                  poke_after=2.0 if params["poke"] else float("inf"))
    else:
        session.wait_for("shell", params["timeout"], poke=params["poke"])
    stdout, rc = session.run_command(params["command"], timeout=max(1.0, deadline - time.monotonic()))
    return {"stdout": stdout, "stdout_lines": stdout.splitlines(), "rc": rc, "logged_in": logged_in,
            "changed": True}


def _check_params(params):
    """Everything refusable is refused before the port is opened."""
    for name in ("timeout", "baudrate"):
        check_number(params[name], name, what="a positive number")
        if params[name] <= 0:
            raise CarrierError("%s: %r is not a positive number" % (name, params[name]))
    seconds = "a number of seconds (0 or more)"
    if params["capture"] is not None:
        check_number(params["capture"]["duration"], "capture.duration", minimum=0, what=seconds)
    for index, step in enumerate(params["expect"] or []):
        check_number(step["timeout"], "expect[%d].timeout" % index, minimum=0, what=seconds)
    if params["command"] is not None:
        check_command(params["command"])


def _run(module):
    params = module.params
    if module.check_mode and (params["expect"] is not None or params["command"] is not None):
        return dict(changed=False, skipped=True, port=params["port"],
                    msg="skipped in check mode: expect and command type on the console")
    _check_params(params)
    started = time.monotonic()
    session = None
    result = {"changed": False, "port": params["port"]}
    try:
        bmc = None
        if params["port"].startswith(BMC_CONSOLE_PREFIX):
            bmc = dict(bmc_from_params(params), token_dir=lock_directory(params["lock_dir"]))
        session = ConsoleSession(params["port"], baudrate=params["baudrate"], log_file=params["log_file"],
                                 log_header=params["log_header"], prompt=params["prompt"], newline=params["newline"],
                                 bmc=bmc)
        session.open()
        result.update(operate(module, session))
    except ConsoleError as exc:
        lines = exc.lines or (session.recent_lines() if session else [])
        raise exc.with_result(lines=lines, state=exc.state, **result)
    except CarrierError as exc:
        raise exc.with_result(**result)
    finally:
        if session is not None:
            session.close()
    result.setdefault("lines", session.lines + ([session.current_line()] if session.current_line() else []))
    result.setdefault("state", session.state)
    result["bytes_received"] = session.bytes_received
    result["elapsed"] = round(time.monotonic() - started, 3)
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[OPERATIONS],
        required_one_of=[OPERATIONS],
        required_by={"login_password": "login_user", "log_header": "log_file"},
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
