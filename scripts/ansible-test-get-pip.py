# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

``ansible-test sanity --venv`` bootstraps pip in each virtual environment it creates with a
get-pip script fetched from a host CI cannot reach. ansible-test first looks for a cached copy
at ``~/.ansible/test/cache/get_pip_<version>.py``; scripts/prepare-ansible-test.sh installs this
file there. Run by ansible-test with the new environment's Python and get-pip's arguments
(``--disable-pip-version-check pip==X.Y --no-setuptools --no-wheel``), it installs pip from
the Python's own ensurepip, then upgrades it to the pinned release from the package index.
"""

import subprocess
import sys

# get-pip options that `pip install` does not take (they stop get-pip adding its own extras).
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, "-m", "pip", "install", "--upgrade", *args], check=True)


if __name__ == "__main__":
    main()
