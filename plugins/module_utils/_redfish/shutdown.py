# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GracefulShutdown: ``poweroff`` typed at a logged-in shell on the node's console, then the power cut.

The console is the terminal server's port (ser2net's ``telnet(rfc2217)`` accepter at
``console_host:console_port``, as the terminal_server role sets it up), opened with the library's
:class:`_console.ConsoleSession`. Only a node already sitting at a shell prompt is shut down: this
service holds no node passwords, so at a login prompt (or a silent console) it refuses and switches
nothing. The power line is switched off once the kernel says ``reboot: Power down``.
"""

from __future__ import annotations

import re

from ansible_collections.picluster.carrier.plugins.module_utils._console import ConsoleSession, ConsoleTimeout
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

HALTED_RE = re.compile(r"reboot: (?:Power down|System halted)")
PROMPT_TIMEOUT = 6.0
HALT_TIMEOUT = 120.0


def console_url(host, port):
    return "rfc2217://%s:%d?ign_set_control" % ("[%s]" % host if ":" in host else host, port)


def poweroff_over_console(url, host, prompt_timeout=PROMPT_TIMEOUT, halt_timeout=HALT_TIMEOUT):
    """Type ``poweroff`` at the shell on ``url`` and wait until the kernel has halted; CarrierError otherwise.

    The error says whether anything was typed: before the prompt was found nothing was.
    """
    with ConsoleSession(url, open_timeout=5.0) as console:
        try:
            reached = console.wait_for("login", prompt_timeout, poke_after=1.0)
        except ConsoleTimeout:
            raise CarrierError("%s: no prompt on its console (%s) within %.0f s: nothing was switched"
                               % (host, url, prompt_timeout)) from None
        if reached != "shell":
            raise CarrierError("%s: its console (%s) is at a login prompt, not a logged-in shell: nothing was "
                               "switched (log in on the console first, or use ForceOff)" % (host, url))
        console.send("poweroff" if console.current_line().rstrip().endswith("#") else "sudo poweroff")
        try:
            console.expect(HALTED_RE, halt_timeout, what="the kernel to power down")
        except ConsoleTimeout:
            raise CarrierError("%s: poweroff was typed on its console but the node did not halt within %.0f s; "
                               "its power was left on" % (host, halt_timeout)) from None
