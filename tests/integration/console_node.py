# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node end of a test console: run by socat on a pty (``EXEC:...,pty,setsid,ctty``).

Waits for its trigger file (power on), prints the boot of docs/hardware.md section 8 (bootloader lines with
their seconds since reset, kernel lines, ``Debian GNU/Linux 12 <host> ttyS0``, a blank line,
``<host> login:``), reads a user name (echoed) and a password (not echoed) in raw mode like agetty,
then execs a real ``bash -i`` on the same terminal with the prompt ``user@host:~$``: what the console
module talks to after login is a real shell with a real tty line discipline.

``--hang`` stops in the middle of the kernel lines and stays silent (a node that never reaches login).
"""

from __future__ import annotations

import argparse
import os
import sys
import termios
import time
import tty

BOOTLOADER = [
    "RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35",
    "BOOTMODE: 0x06 partition 0 build-ts BUILD_TIMESTAMP=1722344555 serial {serial} boardrev c03141 stc 2417058",
    "Boot mode: NETWORK (02) order f5641",
    "NET 192.168.1.17 255.255.255.0 gw 0.0.0.0 tftp 192.168.1.3",
    "TFTP_GET: dc:a6:32:01:36:c2 192.168.1.17 {serial}/config.txt",
    "Read {serial}/config.txt bytes     1540 hnd 0x0",
]
KERNEL = [
    "Booting Linux on physical CPU 0x0000000000 [0x410fd083]",
    "Linux version 6.6.51+rpt-rpi-v8 (debian-kernel@lists.debian.org) #1 SMP PREEMPT Debian 1:6.6.51-1+rpt3",
    "Machine model: Raspberry Pi Compute Module 4 Rev 1.1",
    "printk: console [ttyS0] enabled",
    "mmc0: new DDR MMC card at address 0001",
    "mmcblk0: mmc0:0001 BJTD4R 29.1 GiB",
    "Run /sbin/init as init process",
]


def out(text):
    os.write(1, text.replace("\n", "\r\n").encode())


def read_line(echo):
    buf = b""
    while True:
        ch = os.read(0, 1)
        if not ch:
            sys.exit(0)
        if ch in (b"\r", b"\n"):
            if not buf and ch == b"\n":
                continue  # the LF of a CRLF
            os.write(1, b"\r\n")
            return buf.decode("utf-8", "replace")
        buf += ch
        if echo:
            os.write(1, ch)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="node01")
    parser.add_argument("--serial", default="b7f44626")
    parser.add_argument("--user", default="pi")
    parser.add_argument("--password", default="raspberry")
    parser.add_argument("--trigger", help="boot once this file exists")
    parser.add_argument("--pidfile")
    parser.add_argument("--line-delay", type=float, default=0.01)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    if args.pidfile:
        with open(args.pidfile, "w") as handle:
            handle.write("%d\n" % os.getpid())
    saved = termios.tcgetattr(0)
    tty.setraw(0)
    while args.trigger and not os.path.exists(args.trigger):
        time.sleep(0.01)
    t = 0.96
    for line in BOOTLOADER:
        out("%6.2f %s\n" % (t, line.format(serial=args.serial)))
        t += 0.02
        time.sleep(args.line_delay)
    for i, line in enumerate(KERNEL):
        if args.hang and i == 4:
            while True:
                time.sleep(3600)
        out("[%5d.%06d] %s\n" % (i // 3, i * 1234, line))
        time.sleep(args.line_delay)
    out("[  \x1b[0;32mOK\x1b[0m  ] Reached target multi-user.target - Multi-User System.\n")
    show_issue = True
    while True:
        if show_issue:
            out("\nDebian GNU/Linux 12 %s ttyS0\n\n" % args.host)
        show_issue = True
        out("%s login: " % args.host)
        user = read_line(echo=True).strip()
        if not user:
            show_issue = False
            continue
        out("Password: ")
        password = read_line(echo=False)
        if user != args.user or password != args.password:
            time.sleep(0.3)
            out("\nLogin incorrect\n")
            show_issue = False
            continue
        break
    termios.tcsetattr(0, termios.TCSANOW, saved)
    os.environ.update(PS1="%s@%s:~$ " % (user, args.host), HOME="/tmp", TERM="dumb", USER=user)
    os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])


if __name__ == "__main__":
    main()
