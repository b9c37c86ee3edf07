# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""carrier-redfish: a DMTF Redfish service over the board library, one module per concern.

- ``accounts``: hashed passwords, roles, the accounts file.
- ``config``: the service's configuration file, checked.
- ``sessions``: Redfish sessions (X-Auth-Token) kept in the state directory.
- ``resources``: the Redfish resources (ServiceRoot, Systems, Chassis, Managers, ...) as dicts.
- ``nodes``: what the resources read and do on the hardware (power state, resets, boot override).
- ``events``: EventService subscriptions and deliveries; ``tasks``: TaskService.
- ``app``: the Flask application (routes, authentication, errors) and :func:`main`, the service.

Flask and cheroot are imported inside the functions that serve, so the modules of the collection
import this package without them (ansible-test's import sanity test).
"""

from __future__ import annotations


def main(argv=None):
    """``carrier-redfish --config FILE [--check]``: serve, or check the configuration and exit."""
    from ansible_collections.picluster.carrier.plugins.module_utils._redfish.app import main as _main
    return _main(argv)
