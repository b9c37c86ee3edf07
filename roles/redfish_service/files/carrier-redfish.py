# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redfish_service role's service: python3 carrier-redfish.py --config FILE [--check].

The logic is the collection's (plugins/module_utils/_redfish/), so this only makes the installed
collection importable: every directory of ANSIBLE_COLLECTIONS_PATH (colon-separated, as Ansible
reads it; the role's unit sets it) goes on sys.path, the way Ansible's own loader finds
``ansible_collections.picluster.carrier``.
"""

import os
import sys


def main():
    for directory in reversed([d for d in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":") if d]):
        path = os.path.abspath(os.path.expanduser(directory))
        if os.path.basename(path) == "ansible_collections":
            path = os.path.dirname(path)
        sys.path.insert(0, path)
    try:
        from ansible_collections.picluster.carrier.plugins.module_utils._redfish import main as serve
    except ImportError as exc:
        sys.stderr.write("carrier-redfish: cannot import the picluster.carrier collection (%s); set "
                         "ANSIBLE_COLLECTIONS_PATH to the directory holding ansible_collections/\n" % exc)
        return 2
    return serve(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
