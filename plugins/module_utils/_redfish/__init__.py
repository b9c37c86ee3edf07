# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""carrier-redfish: a DMTF Redfish service over the board library, one module per concern.

- ``accounts``: hashed passwords, roles, the accounts file (``accountfile``: the file as the role's module writes it).
- ``config``: the service's configuration file, checked.
- ``store``: the JSON documents kept in ``state_dir``; ``sessions``: Redfish sessions (X-Auth-Token).
- ``nodes``: what the resources read and do on the hardware (power state, resets, boot override);
  ``shutdown``: GracefulShutdown over the node's console.
- ``resources``: the Redfish documents; ``errors``: Redfish error bodies (Base registry messages).
- ``events``: EventService subscriptions and deliveries; ``tasks``: TaskService.
- ``service``: the parts together, authentication and roles; ``app``, ``routes``, ``routes_services``: the
  Flask application and :func:`main`, the service (cheroot, TLS built in).

Flask and cheroot are imported inside the functions that serve, so the modules of the collection
import this package without them (ansible-test's import sanity test).
"""

from __future__ import annotations


def main(argv=None):
    """``carrier-redfish --config FILE [--check]``: serve, or check the configuration and exit."""
    from ansible_collections.picluster.carrier.plugins.module_utils._redfish.app import main as _main
    return _main(argv)
